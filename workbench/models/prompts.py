"""Every prompt rule of the workbench, in one place: training, answering and evaluation all build their prompts here.

- Templates (`TEMPLATES`): `alpaca-tutorial` (the tutorial's: instruction and response only), `alpaca` (the
  standard template, with `### Input:` when a row has an input) and `chat` (the model's own chat template, user =
  instruction (+ input)). Alpaca prompts start with the tokenizer's BOS where the tokenizer itself adds one
  (`bos_prefix`).
- Training uses prompt / completion pairs (`format_example`: the completion ends with `completion_suffix`, EOS or
  the chat template's end of turn), so TRL computes the loss on the completion only; answering uses the same
  `format_prompt`, so the two cannot drift apart.
- Stop tokens (`stop_token_ids`) are what `completion_suffix` appends, plus Llama-3's two end tokens and the EOS;
  `preflight_check` says when template, EOS and stop tokens disagree (the classic "endless generation" bug).
- Retrieval-augmented prompts (`build_rag_prompt`, `answer_prompt`): an editable template (Korean and English
  defaults) with the retrieved chunks' texts as the context (`format_context`; numbered with their sources only in the
  prompts of runs trained that way, `context_prompt`, so that no answer learns to copy "[1] (file.txt)").
- `completion`, for answering only: a pretrained base model gets question -> answer examples it can continue
  (`workbench.models.fewshot`), the retrieved chunks before the question; it ends at the pattern's boundary
  (`stop_strings`).

Nothing here imports torch: a tokenizer is passed in where one is needed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.common.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

PromptTemplate = Literal["alpaca-tutorial", "alpaca", "chat"]
TEMPLATES: tuple[str, ...] = ("alpaca-tutorial", "alpaca", "chat")
# Templates an answer can be asked with: the training templates, and the examples a pretrained base model continues.
AnswerTemplate = Literal["alpaca-tutorial", "alpaca", "chat", "completion"]
ANSWER_TEMPLATES: tuple[str, ...] = TEMPLATES + ("completion",)

TUTORIAL_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_TEMPLATE_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
ALPACA_TEMPLATE_NO_INPUT = TUTORIAL_TEMPLATE


def user_message(instruction: str, input: str) -> str:
    """An instruction and its input as one message (a chat turn, an endpoint's user message, the tutorial's template)."""
    return f"{instruction}\n\n{input}" if input.strip() else instruction


def format_prompt(
    instruction: str,
    input: str = "",
    *,
    template: AnswerTemplate = "alpaca",
    tokenizer: "PreTrainedTokenizerBase | None" = None,
    system: str | None = None,
) -> str:
    """The text a model sees before its answer.

    Args:
        instruction: the question or task.
        input: optional context (for RAG, the retrieved chunks go here).
        template: one of `ANSWER_TEMPLATES` (`completion`: the question -> answer examples of `completion_prompt`,
            without retrieved context).
        tokenizer: needed for `chat` (its chat template).
        system: an optional system message (`chat` only).

    Raises:
        ConfigError: unknown template, or `chat` without a tokenizer that has a chat template.
    """
    input = input or ""
    if template == "alpaca-tutorial":
        return bos_prefix(tokenizer) + TUTORIAL_TEMPLATE.format(instruction=user_message(instruction, input))
    if template == "alpaca":
        if input.strip():
            return bos_prefix(tokenizer) + ALPACA_TEMPLATE_INPUT.format(instruction=instruction, input=input)
        return bos_prefix(tokenizer) + ALPACA_TEMPLATE_NO_INPUT.format(instruction=instruction)
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "prompt_template = 'chat' needs a tokenizer with a chat template. "
                "Use 'alpaca' for base (non-instruct) models.",
                ko="prompt_template = 'chat'에는 채팅 템플릿이 있는 토크나이저가 필요합니다. 기본(instruct가 "
                   "아닌) 모델에는 'alpaca'를 쓰세요."
            )
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user_message(instruction, input)}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template == "completion":
        return completion_prompt(instruction, input, None, tokenizer=tokenizer)
    raise ConfigError(f"prompt_template = {template!r} is not one of {', '.join(ANSWER_TEMPLATES)}.",
                      ko=f"prompt_template = {template!r}은(는) {', '.join(ANSWER_TEMPLATES)} 중 하나가 아닙니다.")


def completion_prompt(question: str, row_input: str = "", chunks: Sequence[Any] | None = None, *,
                      tokenizer: "PreTrainedTokenizerBase | None" = None) -> str:
    """The prompt of a pretrained base model: question -> answer examples in the question's language, with the
    retrieved `chunks` as the document before the question for a RAG source (`workbench.models.fewshot`), after the BOS its
    tokenizer puts in front of plain text."""
    from workbench.models.fewshot import completion_text

    return bos_prefix(tokenizer) + completion_text(question, row_input, chunks)


def stop_strings(template: str, *, blank_line: bool = True) -> tuple[str, ...]:
    """Texts that end an answer asked with `template` (besides its stop tokens), measured on the sample shop
    (docs/benchmarks.md, "Readers that answer and stop"):

    - `completion`: a line break and the next marker line of either language: the examples answer in one line, and a
      pretrained model that read them continues with the next question, or with the next line of its document;
    - the other templates: a blank line (`blank_line`; off for answers of several paragraphs) and, for the Alpaca
      templates, the next "### " section. A model that learned to end its answers with EOS stops before them; a small
      instruction-tuned one (SmolLM2) often answers, leaves a blank line and goes on.
    """
    if template == "completion":
        from workbench.models.fewshot import STOP_STRINGS

        return STOP_STRINGS
    blank = ("\n\n",) if blank_line else ()
    if template in ("alpaca", "alpaca-tutorial"):
        return blank + ALPACA_SECTIONS
    return blank


ALPACA_SECTIONS: tuple[str, ...] = ("### Instruction:", "### Input:", "### Response:")


def bos_prefix(tokenizer: "PreTrainedTokenizerBase | None") -> str:
    """The BOS token's text when the tokenizer itself puts one in front of plain text (Llama-3's <|begin_of_text|>,
    Gemma's <bos>), else "". The workbench tokenizes prompts with `add_special_tokens=False` (a chat template writes
    its own BOS), so the Alpaca templates write it here: the model reads what its own tokenizer, and the tutorial's
    SFTTrainer, would give it. Gemma 3 270M without <bos>: 4.29 nats per reference-answer token against 2.62."""
    bos = getattr(tokenizer, "bos_token", None)
    if tokenizer is None or not bos:
        return ""
    with_special = tokenizer("a")["input_ids"]
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    adds = len(with_special) > len(plain) and with_special[0] == tokenizer.bos_token_id
    return bos if adds else ""


def completion_suffix(tokenizer: "PreTrainedTokenizerBase", template: PromptTemplate) -> str:
    """What ends a training completion: EOS for Alpaca templates, the chat template's end of turn for chat.

    This is the text the model must learn to emit; `inference.stop_token_ids` stops on it. When the
    two disagree, generation never ends (the classic "endless generation" bug).
    """
    if template != "chat":
        if not tokenizer.eos_token:
            raise ConfigError("The tokenizer has no EOS token: set one before training with an Alpaca template.",
                              ko="토크나이저에 EOS 토큰이 없습니다: Alpaca 템플릿으로 학습하기 전에 하나를 정하세요.")
        return tokenizer.eos_token
    marker = "\x00WB\x00"
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "q"}], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": "q"}, {"role": "assistant", "content": marker}], tokenize=False
    )
    if not full.startswith(prompt) or marker not in full:
        # Some templates render the assistant turn differently from the generation prompt; fall back to EOS.
        return tokenizer.eos_token or ""
    return full.split(marker, 1)[1]


def format_example(
    row: Mapping[str, Any],
    *,
    template: PromptTemplate = "alpaca",
    tokenizer: "PreTrainedTokenizerBase",
) -> dict[str, str]:
    """One training example as TRL's prompt / completion pair (loss on the completion only)."""
    prompt = format_prompt(str(row["instruction"]), str(row.get("input") or ""), template=template, tokenizer=tokenizer)
    return {"prompt": prompt, "completion": str(row["output"]) + completion_suffix(tokenizer, template)}


# --- stop tokens ---------------------------------------------------------------------------------------------

# Llama-3 ends an assistant turn with <|eot_id|> and a document with <|end_of_text|>; its tokenizer's EOS is
# one of the two depending on the build, so generation must stop on both.
LLAMA3_STOP_TOKENS = ("<|eot_id|>", "<|end_of_text|>")


def _token_id(tokenizer: "PreTrainedTokenizerBase", token: str) -> int | None:
    """The id of `token` if the vocabulary really has it (convert_tokens_to_ids returns unk for unknown ones)."""
    if not token:
        return None
    vocab = tokenizer.get_vocab()
    return vocab.get(token)


def _end_of_turn_token(tokenizer: "PreTrainedTokenizerBase") -> str | None:
    """The first special token of what the chat template puts after an assistant answer (`<|im_end|>`,
    `<end_of_turn>`, `<|eot_id|>` ...)."""
    suffix = completion_suffix(tokenizer, "chat")
    specials = sorted(set(tokenizer.all_special_tokens) | set(getattr(tokenizer, "added_tokens_encoder", {}) or {}),
                      key=len, reverse=True)
    best: tuple[int, str] | None = None
    for tok in specials:
        pos = suffix.find(tok) if tok else -1
        if pos >= 0 and (best is None or pos < best[0]):
            best = (pos, tok)
    if best is not None:
        return best[1]
    return tokenizer.eos_token


def stop_token_ids(tokenizer: "PreTrainedTokenizerBase", template: AnswerTemplate) -> list[int]:
    """Token ids that end an answer, for a model prompted with `template`.

    - Llama-3 tokenizers: `<|eot_id|>` and `<|end_of_text|>` (whichever of them is the EOS).
    - `chat`: the chat template's end-of-turn token (what `completion_suffix` appends in training).
    - Alpaca templates: the EOS token, which training appends to every completion; `completion`: the EOS as well.
    The tokenizer's EOS is always included: a model may end a document with it whatever the template.

    Raises:
        ConfigError: unknown template, or no stop token at all (the model could never stop).
    """
    if template not in ANSWER_TEMPLATES:
        raise ConfigError(f"prompt_template = {template!r} is not one of {', '.join(ANSWER_TEMPLATES)}.",
                          ko=f"prompt_template = {template!r}은(는) {', '.join(ANSWER_TEMPLATES)} 중 하나가 아닙니다.")
    names: list[str] = [t for t in LLAMA3_STOP_TOKENS if _token_id(tokenizer, t) is not None]
    if template == "chat":
        if getattr(tokenizer, "chat_template", None):
            names.append(_end_of_turn_token(tokenizer) or "")
    elif tokenizer.eos_token:
        names.append(completion_suffix(tokenizer, template))
    if tokenizer.eos_token:
        names.append(tokenizer.eos_token)
    ids: list[int] = []
    for name in names:
        i = _token_id(tokenizer, name)
        if i is not None and i not in ids:
            ids.append(i)
    if not ids:
        raise ConfigError(
            f"The tokenizer has no EOS or end-of-turn token for template {template!r}: generation would never stop. "
            f"Set tokenizer.eos_token, or use the model's chat template.",
            ko=f"토크나이저에 템플릿 {template!r}의 EOS나 턴 종료 토큰이 없어 생성이 멈추지 않습니다. tokenizer.eos_token을 "
               f"설정하거나 모델의 채팅 템플릿을 쓰세요."
        )
    return ids


def preflight_check(
    tokenizer: "PreTrainedTokenizerBase",
    template: PromptTemplate,
    *,
    training_tokenizer: "PreTrainedTokenizerBase | None" = None,
) -> list[str]:
    """Warnings (empty when all is well) about template, EOS and stop tokens disagreeing.

    Args:
        tokenizer: the tokenizer inference uses.
        template: the run's prompt template (what training formatted rows with).
        training_tokenizer: the tokenizer saved with the adapter (what training appended EOS with), if any.
    """
    warnings: list[str] = []
    if template not in TEMPLATES:
        return [f"Prompt template {template!r} is unknown; use one of {', '.join(TEMPLATES)}."]
    if template == "chat" and not getattr(tokenizer, "chat_template", None):
        return ["Template 'chat' but the tokenizer has no chat template: prompts cannot be built. "
                "Use an Alpaca template for this model."]
    if not tokenizer.eos_token:
        warnings.append("The tokenizer has no EOS token: training rows get no end marker and the model will not learn to "
                        "stop. Set an EOS token before training.")
    try:
        stops = stop_token_ids(tokenizer, template)
    except ConfigError as exc:
        return warnings + [str(exc)]
    train_tok = training_tokenizer or tokenizer
    try:
        suffix = completion_suffix(train_tok, template)
    except ConfigError as exc:
        return warnings + [str(exc)]
    suffix_ids = train_tok(suffix, add_special_tokens=False)["input_ids"] if suffix else []
    if not suffix_ids:
        warnings.append(f"Training appends nothing after each answer with template {template!r}: the model never "
                        f"learns to stop and generation runs to max_new_tokens.")
    elif not any(i in stops for i in suffix_ids):
        names = ", ".join(repr(tokenizer.convert_ids_to_tokens(i)) for i in stops)
        warnings.append(f"Training ends answers with {suffix!r} but generation stops on {names}: answers will run on "
                        f"to max_new_tokens. Use the same tokenizer and template for training and inference.")
    if training_tokenizer is not None and training_tokenizer.eos_token != tokenizer.eos_token:
        warnings.append(f"The adapter was trained with EOS {training_tokenizer.eos_token!r} but inference uses "
                        f"{tokenizer.eos_token!r}: use the tokenizer saved with the adapter.")
    if tokenizer.pad_token is not None and tokenizer.pad_token == tokenizer.eos_token and template != "chat":
        warnings.append(f"PAD and EOS are the same token ({tokenizer.eos_token!r}): collators that mask padding also mask "
                        f"the EOS at the end of each answer, so the model may never learn to stop. Set a separate pad token.")
    return warnings


# --- prompts for retrieval-augmented answers -----------------------------------------------------------------

DEFAULT_RAG_TEMPLATES: dict[str, str] = {
    "en": (
        "Answer the question using only the reference documents below. "
        "If they do not contain the answer, say that you do not know. Answer briefly.\n\n"
        "Question: {question}"
    ),
    "ko": (
        "아래 참고 문서만 사용해서 질문에 답하세요. 참고 문서에 답이 없으면 모른다고 답하세요. 짧게 답하세요.\n\n"
        "질문: {question}"
    ),
}


def instruction_sentences(rag_template: str | None = None) -> list[str]:
    """The sentences of the prompts' own instructions (the Alpaca preambles, the default RAG templates and
    `rag_template`), without placeholders: an answer that recites one repeated its prompt instead of answering."""
    texts = [TUTORIAL_TEMPLATE, ALPACA_TEMPLATE_INPUT, *DEFAULT_RAG_TEMPLATES.values(), rag_template or ""]
    out: list[str] = []
    for text in texts:
        for line in text.splitlines():
            for sentence in re.split(r"(?<=[.!?])\s+", line.strip()):
                if len(sentence) >= 12 and "{" not in sentence and not sentence.startswith("###") \
                        and sentence not in out:
                    out.append(sentence)
    return out


def _chunk_fields(chunk: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(chunk, Mapping):
        return str(chunk.get("text") or chunk.get("page_content") or ""), dict(chunk.get("metadata") or {})
    text = getattr(chunk, "text", None)
    if text is None:
        text = getattr(chunk, "page_content", "")
    return str(text), dict(getattr(chunk, "metadata", None) or {})


def format_context(chunks: Sequence[Any], *, numbered: bool = False) -> str:
    """Retrieved chunks' texts, one paragraph each. `numbered`: each under its number and source,
    `[1] (store_map_ko.md)\\n<text>`, as runs trained with retrieved context saw them (`context_prompt`). Elsewhere no
    headers: a model copies what its prompt shows, and the sources are shown beside the answer instead."""
    parts = []
    for i, chunk in enumerate(chunks, 1):
        text, meta = _chunk_fields(chunk)
        if not numbered:
            parts.append(text.strip())
            continue
        source = meta.get("source") or meta.get("file_name") or ""
        source = Path(str(source)).name if source else ""
        head = f"[{i}]" + (f" ({source})" if source else "")
        parts.append(f"{head}\n{text.strip()}")
    return "\n\n".join(parts)


def custom_rag_template(text: str | None) -> str:
    """`text` as a RAG template of the user's own, or "" when it is one of the default templates as shown (untouched):
    then every question gets the default of its own language (`build_rag_prompt`)."""
    text = (text or "").strip()
    return "" if text in {t.strip() for t in DEFAULT_RAG_TEMPLATES.values()} else text


def build_rag_prompt(
    question: str,
    chunks: Sequence[Any],
    template_text: str | None = None,
    lang: str = "auto",
    *,
    numbered: bool = False,
) -> tuple[str, str]:
    """An (instruction, input) pair for `prompts.format_prompt` from a question and retrieved chunks.

    `template_text` must contain `{question}`. The context (`format_context`, `numbered` or not) goes into the Alpaca
    input section;
    a template that contains `{context}` places it itself (and the input stays empty). Empty or None picks
    the default template for `lang` ("ko" or "en"; "auto": the question's own language, so that an English question
    is not asked in Korean).

    Raises:
        ConfigError: the template lacks `{question}` or has another placeholder.
    """
    if lang not in DEFAULT_RAG_TEMPLATES:
        from workbench.models.fewshot import language_of

        lang = language_of(question)
    text = template_text if template_text and template_text.strip() else DEFAULT_RAG_TEMPLATES[lang]
    if "{question}" not in text:
        raise ConfigError("The RAG prompt template must contain {question} (where the question goes). "
                          "Add it, or reset the template to the default.",
                          ko="RAG 프롬프트 템플릿에는 {question}(질문이 들어갈 자리)이 있어야 합니다. 넣거나 "
                             "템플릿을 기본값으로 되돌리세요.")
    context = format_context(chunks, numbered=numbered)
    try:
        if "{context}" in text:
            return text.format(question=question, context=context), ""
        return text.format(question=question), context
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"The RAG prompt template has a placeholder other than {{question}} and {{context}} ({exc}). "
                          f"Write literal braces as {{{{ and }}}}.",
                          ko=f"RAG 프롬프트 템플릿에 {{question}}과 {{context}} 말고 다른 자리표시자가 있습니다 "
                             f"({exc}). 중괄호 자체는 {{{{와 }}}}로 쓰세요.") from exc


def answer_prompt(question: str, row_input: str, chunks: Sequence[Any], *, rag: bool, rag_template: str | None = None,
                  lang: str = "auto", numbered: bool = False) -> tuple[str, str]:
    """The (instruction, input) one answer source gets: a dataset row's own instruction and input, or for a RAG source
    the RAG template around the question (the row's input appended to it) with the retrieved chunks as its context.

    Raises:
        ConfigError: a broken RAG template (see `build_rag_prompt`).
    """
    if not rag:
        return question, row_input or ""
    return build_rag_prompt(question if not (row_input or "").strip() else f"{question}\n\n{row_input}", chunks,
                            rag_template, lang, numbered=numbered)


# --- the prompt of a run trained with retrieved context (TrainConfig.context) ------------------------------------


def cut_text(text: str, max_chars: int) -> str:
    """`text` stripped and cut to at most `max_chars` characters at the last word boundary (0: whole). A chunk without
    a space in its window (Korean runs, a long token) is cut at `max_chars` itself."""
    text = text.strip()
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    head = text[:max_chars]
    space = head.rfind(" ")
    return (head[:space] if space > max_chars // 2 else head).rstrip()


def context_chunks(chunks: Sequence[Any], k: int, max_chars: int) -> list[dict[str, Any]]:
    """The first `k` chunks, each cut to `max_chars` characters, as `{"text", "metadata"}` (source and chunk id only,
    which is all `format_context` reads)."""
    out = []
    for chunk in list(chunks)[:k]:
        text, meta = _chunk_fields(chunk)
        keep = {key: meta[key] for key in ("source", "file_name", "chunk_id") if meta.get(key) not in (None, "")}
        out.append({"text": cut_text(text, max_chars), "metadata": keep})
    return out


def context_prompt(question: str, row_input: str, chunks: Sequence[Any], *, k: int, max_chars: int,
                   lang: str) -> tuple[str, str]:
    """The (instruction, input) of a run trained with retrieved context: the default RAG template of `lang` around the
    question, with the first `k` chunks cut to `max_chars`, numbered with their sources. Training rows
    (`workbench.training.train_context`) and that run's fine-tuned + RAG answers (`workbench.answers.answer`) both come from here, so
    the model is asked as it was taught."""
    return answer_prompt(question, row_input, context_chunks(chunks, k, max_chars), rag=True, rag_template=None,
                         lang=lang, numbered=True)
