"""The prompts of a pretrained base model (workbench.models.fewshot, prompts.completion_prompt): exact text, the question's
language, retrieved chunks before the question and without headers, and examples that hold nothing of the user's
data (the sample shop's dataset and documents)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

from workbench.models.fewshot import DOCUMENT_EXAMPLES, EXAMPLES, STOP_STRINGS, completion_text, language_of, one_block
from workbench.models.prompts import completion_prompt, format_prompt, stop_strings

ROOT = Path(__file__).resolve().parent.parent


def test_a_question_gets_examples_in_its_own_language_and_ends_at_the_answer_marker():
    ko = completion_text("현금으로 결제가 가능한가요?")
    assert ko.startswith("질문: 도서관에서 책은 몇 권까지 빌릴 수 있나요?\n답변: 한 번에 다섯 권까지 빌릴 수 있습니다.\n\n")
    assert ko.endswith("\n\n질문: 현금으로 결제가 가능한가요?\n답변:")
    assert ko.count("질문:") == len(EXAMPLES["ko"]) + 1 and "Question:" not in ko
    en = completion_text("Can I pay in cash?", "Order total: 12,000 won")
    assert en.endswith("\n\nQuestion: Can I pay in cash?\nOrder total: 12,000 won\nAnswer:") and "질문" not in en
    assert language_of("Where is 행복마트?") == "ko" and language_of("Where is it?") == "en"


def test_rag_examples_read_a_document_first_and_the_chunks_come_without_headers():
    chunks = [{"text": "## 3번 통로\n\n아이스크림은 3번 통로 냉동고에 있습니다.", "metadata": {"source": "store_map_ko.md"}},
              {"text": "계산대는 입구 옆입니다.", "metadata": {"source": "shop_intro_ko.md"}}]
    text = completion_text("아이스크림이 있는 곳은?", "", chunks)
    assert text.endswith("\n\n문서: ## 3번 통로\n아이스크림은 3번 통로 냉동고에 있습니다.\n계산대는 입구 옆입니다.\n"
                         "질문: 아이스크림이 있는 곳은?\n답변:")
    assert text.count("문서:") == len(DOCUMENT_EXAMPLES["ko"]) + 1
    assert "store_map_ko.md" not in text and "[1]" not in text
    last = text.split("\n\n")[-1]  # the user's example holds no blank line: a blank line is where an example ends
    assert last.startswith("문서:") and last.count("\n") == 4
    assert one_block("a\n\n\n b \n") == "a\nb"


def test_the_completion_template_is_a_prompt_rule_like_the_others(smollm2_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(smollm2_dir))
    assert format_prompt("Can I pay in cash?", template="completion", tokenizer=tok) == completion_text("Can I pay in cash?")
    assert completion_prompt("Q?", "", [], tokenizer=tok).endswith("Document: \nQuestion: Q?\nAnswer:")
    assert stop_strings("completion") == STOP_STRINGS == ("\n",)  # every example answers in one line
    assert stop_strings("alpaca") == ("\n\n", "### Instruction:", "### Input:", "### Response:")
    assert stop_strings("chat") == ("\n\n",) and stop_strings("chat", blank_line=False) == ()


def _ngrams(text: str, n: int) -> set[str]:
    t = re.sub(r"\s+", "", text)
    return {t[i:i + n] for i in range(len(t) - n + 1)}


@pytest.mark.skipif(not (ROOT / "examples" / "alpaca" / "shop_qa.csv").is_file(), reason="the sample data is not there")
def test_the_examples_hold_nothing_of_the_users_dataset_or_documents():
    """The base column must not learn the user's facts from its prompt: no run of 10 characters (spaces removed) of an
    example appears in the sample shop's 499 rows or 10 documents."""
    from workbench.common.textcodec import decode_text

    user = []
    with open(ROOT / "examples" / "alpaca" / "shop_qa.csv", encoding="utf-8", newline="") as f:
        user += [" ".join(r.values()) for r in csv.DictReader(f)]
    user += [decode_text(p.read_bytes(), p.name)[0] for p in sorted((ROOT / "examples" / "shop").iterdir())]
    theirs = set().union(*(_ngrams(u, 10) for u in user))
    ours = [q + a for lang in EXAMPLES for q, a in EXAMPLES[lang]] + \
           [d + q + a for lang in DOCUMENT_EXAMPLES for d, q, a in DOCUMENT_EXAMPLES[lang]]
    shared = sorted(set().union(*(_ngrams(x, 10) for x in ours)) & theirs)
    assert shared == [], shared
