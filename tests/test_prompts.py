"""Prompt rules: templates, BOS, completion suffix, stop tokens, preflight, RAG prompts (workbench.models.prompts)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from workbench.common.errors import ConfigError
from workbench.models.prompts import (
    DEFAULT_RAG_TEMPLATES,
    answer_prompt,
    build_rag_prompt,
    completion_suffix,
    context_prompt,
    custom_rag_template,
    format_example,
    format_prompt,
    preflight_check,
    stop_token_ids,
)


@pytest.fixture(scope="module")
def tok(smollm2_dir):
    return AutoTokenizer.from_pretrained(str(smollm2_dir))


def test_tutorial_and_alpaca_templates_exact():
    assert format_prompt("현금으로 결제가 가능한가요?", template="alpaca-tutorial") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n현금으로 결제가 가능한가요?\n\n### Response:\n"
    )
    with_input = format_prompt("Q", "CTX", template="alpaca")
    assert "### Input:\nCTX\n\n### Response:\n" in with_input
    assert format_prompt("Q", "", template="alpaca") == format_prompt("Q", template="alpaca-tutorial")


def _word_tokenizer(adds_bos: bool):
    """A real fast tokenizer (word level) that puts <s> in front of plain text, as Llama-3's and Gemma's do, or not."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "Q": 3, "A": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if adds_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def test_alpaca_prompts_start_with_bos_where_the_tokenizer_adds_one(tok):
    with_bos, without = _word_tokenizer(True), _word_tokenizer(False)
    for template in ("alpaca", "alpaca-tutorial"):
        plain = format_prompt("Q", "CTX", template=template)
        assert format_prompt("Q", "CTX", template=template, tokenizer=with_bos) == "<s>" + plain
        assert format_prompt("Q", "CTX", template=template, tokenizer=without) == plain
        assert format_prompt("Q", "CTX", template=template, tokenizer=tok) == plain  # SmolLM2 adds none
    ids = with_bos(format_prompt("Q", template="alpaca", tokenizer=with_bos), add_special_tokens=False)["input_ids"]
    assert ids[0] == 1 and ids.count(1) == 1  # exactly one BOS, as the tokenizer itself would give
    ex = format_example({"instruction": "Q", "input": "", "output": "A"}, template="alpaca", tokenizer=with_bos)
    assert ex["prompt"].startswith("<s>Below is") and ex["completion"] == "A</s>"


def test_chat_template_needs_a_tokenizer():
    with pytest.raises(ConfigError, match="needs a tokenizer with a chat template"):
        format_prompt("Q", template="chat")
    with pytest.raises(ConfigError, match="is not one of"):
        format_prompt("Q", template="vicuna")  # type: ignore[arg-type]


def test_examples_end_with_what_generation_stops_on(tok):
    ex = format_example({"instruction": "현금 돼요?", "input": "", "output": "네, 됩니다."}, template="chat", tokenizer=tok)
    assert ex["prompt"].endswith("<|im_start|>assistant\n")
    assert ex["completion"] == "네, 됩니다.<|im_end|>\n"
    ex = format_example({"instruction": "Q", "input": None, "output": "A"}, template="alpaca", tokenizer=tok)
    assert ex["completion"] == "A<|im_end|>"
    assert completion_suffix(tok, "alpaca-tutorial") == tok.eos_token


def test_stop_tokens_for_smollm2_chat_and_alpaca(tok):
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    assert stop_token_ids(tok, "chat") == [im_end]
    assert stop_token_ids(tok, "alpaca") == [im_end]  # the EOS training appends
    with pytest.raises(ConfigError, match="is not one of"):
        stop_token_ids(tok, "vicuna")  # type: ignore[arg-type]


def test_llama3_stops_on_eot_and_end_of_text(smollm2_dir):
    t = AutoTokenizer.from_pretrained(str(smollm2_dir))
    t.add_special_tokens({"additional_special_tokens": ["<|eot_id|>", "<|end_of_text|>"]})
    t.eos_token = "<|end_of_text|>"
    t.chat_template = ("{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}"
                       "<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>"
                       "\n\n{% endif %}")
    eot, eot_text = t.convert_tokens_to_ids(["<|eot_id|>", "<|end_of_text|>"])
    assert stop_token_ids(t, "chat") == [eot, eot_text]
    assert stop_token_ids(t, "alpaca") == [eot, eot_text]


def test_rag_prompt_gives_the_chunks_without_headers_and_a_trained_run_its_numbered_ones():
    chunks = [
        {"text": "아이스크림은 3번 통로에 있습니다.", "metadata": {"source": "/data/shop/store_map_ko.md"}},
        {"text": " Cash is accepted. ", "metadata": {}},
    ]
    instruction, context = build_rag_prompt("아이스크림이 있는 곳은?", chunks, None, "ko")
    assert instruction == ("아래 참고 문서만 사용해서 질문에 답하세요. 참고 문서에 답이 없으면 모른다고 답하세요. 짧게 답하세요.\n\n"
                           "질문: 아이스크림이 있는 곳은?")
    # No "[1] (file)" for a model to copy: the page names the sources beside the answer.
    assert context == "아이스크림은 3번 통로에 있습니다.\n\nCash is accepted."
    _, numbered = build_rag_prompt("아이스크림이 있는 곳은?", chunks, None, "ko", numbered=True)
    assert numbered == "[1] (store_map_ko.md)\n아이스크림은 3번 통로에 있습니다.\n\n[2]\nCash is accepted."
    # A run trained with retrieved context keeps the numbered form it was trained on, byte for byte.
    assert context_prompt("아이스크림이 있는 곳은?", "", chunks, k=2, max_chars=0, lang="ko") == (instruction, numbered)
    en, _ = build_rag_prompt("Where?", chunks, "", "en")
    assert en.endswith("Question: Where?") and en.startswith("Answer the question using only")
    # The default language is each question's own: an English question is not asked in Korean, nor the reverse.
    assert build_rag_prompt("Where?", chunks)[0] == en and build_rag_prompt("Where?", chunks, None, "auto")[0] == en
    assert build_rag_prompt("아이스크림이 있는 곳은?", chunks)[0] == instruction
    assert answer_prompt("Where?", "", chunks, rag=True)[0] == en
    # A default template left as shown on the page is no template of the user's: each question gets its own language.
    assert custom_rag_template(DEFAULT_RAG_TEMPLATES["ko"] + "\n") == "" and custom_rag_template(" ") == ""
    assert custom_rag_template("Docs: {context} Q: {question}") == "Docs: {context} Q: {question}"
    inline, empty = build_rag_prompt("Q?", chunks[:1], "Docs:\n{context}\nQ: {question}", "en")
    assert (inline, empty) == ("Docs:\n아이스크림은 3번 통로에 있습니다.\nQ: Q?", "")
    with pytest.raises(ConfigError, match=r"must contain \{question\}"):
        build_rag_prompt("Q", chunks, "no placeholder", "en")
    with pytest.raises(ConfigError, match="placeholder other than"):
        build_rag_prompt("Q", chunks, "{question} {answer}", "en")


def test_preflight_finds_disagreements(smollm2_dir, tok):
    assert preflight_check(tok, "chat") == []
    assert preflight_check(tok, "alpaca") == []
    no_chat = AutoTokenizer.from_pretrained(str(smollm2_dir))
    no_chat.chat_template = None
    assert "has no chat template" in preflight_check(no_chat, "chat")[0]
    same_pad = AutoTokenizer.from_pretrained(str(smollm2_dir))
    same_pad.pad_token = same_pad.eos_token
    assert any("PAD and EOS are the same" in w for w in preflight_check(same_pad, "alpaca"))
    trained = AutoTokenizer.from_pretrained(str(smollm2_dir))
    trained.eos_token = "<|endoftext|>"  # training appended another EOS than inference stops on
    warnings = preflight_check(tok, "alpaca", training_tokenizer=trained)
    assert any("Training ends answers with '<|endoftext|>' but generation stops on '<|im_end|>'" in w for w in warnings)
    assert any("trained with EOS '<|endoftext|>'" in w for w in warnings)


def test_answer_prompt_keeps_a_rows_input_and_wraps_rag_questions():
    assert answer_prompt("Q?", "CTX", [], rag=False) == ("Q?", "CTX")
    chunks = [{"text": "Ice cream: aisle 5.", "metadata": {"source": "docs/map.md"}}]
    instruction, context = answer_prompt("Q?", "CTX", chunks, rag=True, lang="en")
    assert instruction.endswith("Question: Q?\n\nCTX") and context == "Ice cream: aisle 5."
