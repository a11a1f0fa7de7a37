"""Alpaca rows (instruction / input / output): prompt formatting used by training and inference.

Three templates:

- `alpaca-tutorial`: the tutorial's template (instruction and response only) plus the tokenizer's EOS;
- `alpaca`: the standard Alpaca template, with the `### Input:` section when a row has an input;
- `chat`: the model's own chat template (for instruct models), user = instruction (+ input).

Training uses prompt / completion pairs (`format_example`) so that TRL computes the loss on the
completion only; inference uses the same `format_prompt`, so the two cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

PromptTemplate = Literal["alpaca-tutorial", "alpaca", "chat"]
TEMPLATES: tuple[str, ...] = ("alpaca-tutorial", "alpaca", "chat")

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


def _user_message(instruction: str, input: str) -> str:
    return f"{instruction}\n\n{input}" if input.strip() else instruction


def format_prompt(
    instruction: str,
    input: str = "",
    *,
    template: PromptTemplate = "alpaca",
    tokenizer: "PreTrainedTokenizerBase | None" = None,
    system: str | None = None,
) -> str:
    """The text a model sees before its answer.

    Args:
        instruction: the question or task.
        input: optional context (for RAG, the retrieved chunks go here).
        template: one of `TEMPLATES`.
        tokenizer: needed for `chat` (its chat template).
        system: an optional system message (`chat` only).

    Raises:
        ConfigError: unknown template, or `chat` without a tokenizer that has a chat template.
    """
    input = input or ""
    if template == "alpaca-tutorial":
        return TUTORIAL_TEMPLATE.format(instruction=_user_message(instruction, input))
    if template == "alpaca":
        if input.strip():
            return ALPACA_TEMPLATE_INPUT.format(instruction=instruction, input=input)
        return ALPACA_TEMPLATE_NO_INPUT.format(instruction=instruction)
    if template == "chat":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "prompt_template = 'chat' needs a tokenizer with a chat template. "
                "Use 'alpaca' for base (non-instruct) models."
            )
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": _user_message(instruction, input)}
        ]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    raise ConfigError(f"prompt_template = {template!r} is not one of {', '.join(TEMPLATES)}.")


def completion_suffix(tokenizer: "PreTrainedTokenizerBase", template: PromptTemplate) -> str:
    """What ends a training completion: EOS for Alpaca templates, the chat template's end of turn for chat.

    This is the text the model must learn to emit; `inference.stop_token_ids` stops on it. When the
    two disagree, generation never ends (the classic "endless generation" bug).
    """
    if template != "chat":
        if not tokenizer.eos_token:
            raise ConfigError("The tokenizer has no EOS token: set one before training with an Alpaca template.")
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
