"""Language models: which base models there are, how to load them, and every rule of how to prompt them.

Modules:
    registry        `REGISTRY`, `DEFAULT_MODEL`, `ModelSpec`, `resolve_model`, `load_causal_lm`, `detect_device`,
                    `prepare_packaged_model`, `instruction_tuned`
    gguf_tokenizer  a SentencePiece-BPE tokenizer rebuilt from a GGUF file (`build_sentencepiece_bpe`)
    attention       CPU attention for left-padded batches (`use_padded_attention`)
    prompts         every prompt rule: `format_prompt`, `completion_prompt`, `format_context`, `stop_strings`
    fewshot         prompts for a pretrained base model (`completion_text`)
    stopping        where an answer ends: `clean_answer`, `AnswerCutter`, `stop_criteria`
    endpoints       chat endpoints (OpenAI-compatible, Anthropic): `Endpoint`, `EndpointRequestError`

Heavy libraries (torch, transformers) load inside the functions that need them; import the module you need.
"""
