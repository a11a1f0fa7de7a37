from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from workbench.alpaca import completion_suffix, format_example, format_prompt
from workbench.errors import ConfigError


@pytest.fixture(scope="module")
def smol_tok(smollm2_dir):
    return AutoTokenizer.from_pretrained(str(smollm2_dir))


def test_tutorial_and_alpaca_templates_exact():
    assert format_prompt("현금으로 결제가 가능한가요?", template="alpaca-tutorial") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n현금으로 결제가 가능한가요?\n\n### Response:\n"
    )
    with_input = format_prompt("Q", "CTX", template="alpaca")
    assert "### Input:\nCTX\n\n### Response:\n" in with_input
    assert format_prompt("Q", "", template="alpaca") == format_prompt("Q", template="alpaca-tutorial")


def test_chat_template_needs_a_tokenizer():
    with pytest.raises(ConfigError, match="needs a tokenizer with a chat template"):
        format_prompt("Q", template="chat")
    with pytest.raises(ConfigError, match="is not one of"):
        format_prompt("Q", template="vicuna")  # type: ignore[arg-type]


def test_examples_end_with_what_generation_stops_on(smol_tok):
    ex = format_example({"instruction": "현금 돼요?", "input": "", "output": "네, 됩니다."}, template="chat", tokenizer=smol_tok)
    assert ex["prompt"].endswith("<|im_start|>assistant\n")
    assert ex["completion"] == "네, 됩니다.<|im_end|>\n"
    ex = format_example({"instruction": "Q", "input": None, "output": "A"}, template="alpaca", tokenizer=smol_tok)
    assert ex["completion"] == "A<|im_end|>"
    assert completion_suffix(smol_tok, "alpaca-tutorial") == smol_tok.eos_token
