"""Row checks (workbench.dataset.alpaca_checks): exact issues on literal rows."""

from __future__ import annotations

from workbench.dataset import alpaca_checks
from workbench.models.prompts import format_prompt


def test_row_lengths(smollm2_dir, workspace):
    tok = alpaca_checks.load_tokenizer("smollm2-135m", workspace)
    rows = [{"instruction": "Q", "input": "", "output": "A"}, {"instruction": "가나다", "input": "ctx", "output": 5}]
    out = alpaca_checks.row_lengths(rows, tok)
    assert [(d["row"], d["instruction_chars"], d["input_chars"], d["output_chars"]) for d in out] == [(1, 1, 0, 1), (2, 3, 3, 1)]
    assert out[0]["tokens"] == len(tok.encode(format_prompt("Q") + "A", add_special_tokens=False).ids)


def test_issues_name_the_row_and_kind():
    rows = [{"instruction": "현금?", "input": "", "output": "네"}, {"instruction": "", "input": "", "output": "x"},
            {"instruction": "현금?", "input": "", "output": "네"}, {"instruction": "현금 ?", "input": "", "output": "네!"},
            {"instruction": "현금?", "input": "", "output": "아니요"}, {"instruction": "q", "input": "", "output": 5}]
    issues = alpaca_checks.validate_rows(rows)
    assert [(i.row, i.kind, i.other_row) for i in issues] == [
        (2, "missing_instruction", None), (3, "duplicate", 1), (4, "near_duplicate", 1), (5, "same_question", 1),
        (6, "non_text", None)]
    assert alpaca_checks.issue_rows(issues) == [2, 6]
    assert alpaca_checks.summarize_issues(issues)["errors"] == 2
    assert alpaca_checks.normalize_text("Hello, World!  ") == "helloworld"
    assert alpaca_checks.fix_rows(rows[5:])[0]["output"] == "5"


def test_every_issue_kind_has_an_english_and_a_korean_label():
    from typing import get_args

    from workbench.dataset.alpaca_checks import ISSUE_LABELS, IssueKind

    assert set(ISSUE_LABELS) == set(get_args(IssueKind))
    assert all(en.strip() and ko.strip() for en, ko in ISSUE_LABELS.values())
