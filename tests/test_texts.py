"""Text in both languages (workbench.common.texts): the English is the str, the Korean rides along and is picked."""

from __future__ import annotations

import json
import pickle

from workbench.common.texts import STATES, Text, both, from_record, pick, state_ko, state_text


def test_a_text_is_its_english_and_carries_its_korean():
    t = Text("Splitting", "분할하는 중")
    assert t == "Splitting" and isinstance(t, str) and t.ko == "분할하는 중"
    assert f"{t}" == "Splitting" and json.dumps(t) == '"Splitting"'
    assert Text("only English").ko == "only English"
    assert pickle.loads(pickle.dumps(t)).ko == "분할하는 중"


def test_pick_chooses_the_language_and_takes_plain_values():
    t = Text("done", "완료")
    assert (pick(t, "ko"), pick(t, "en")) == ("완료", "done")
    assert pick("plain", "ko") == "plain" and pick(None, "ko") == "" and pick(3, "en") == "3"


def test_both_stores_both_and_from_record_reads_them_back():
    record = both(Text("Report written", "보고서를 썼습니다"))
    assert record == {"message": "Report written", "message_ko": "보고서를 썼습니다"}
    assert from_record(record, "message", "ko") == "보고서를 썼습니다"
    assert from_record(record, "message", "en") == "Report written"
    assert from_record({"message": "old line"}, "message", "ko") == "old line"  # written before message_ko existed
    assert from_record(None, "error", "ko") == ""
    assert both(Text("x", "엑스"), "error") == {"error": "x", "error_ko": "엑스"}


def test_every_job_state_has_korean():
    assert set(STATES) >= {"pending", "running", "completed", "failed", "cancelled"}
    assert state_text("running") == "running" and state_ko("running") == "실행 중"
    assert state_ko("failed") == "실패" and state_ko("weird") == "weird"


def test_prefixed_keeps_both_languages_of_a_sub_tasks_message():
    from workbench.common.texts import prefixed

    got = prefixed("recursive:300:30", Text("Embedding 3/10", "임베딩 3/10"))
    assert (str(got), got.ko) == ("recursive:300:30: Embedding 3/10", "recursive:300:30: 임베딩 3/10")
    plain = prefixed("x", "done")
    assert (str(plain), plain.ko) == ("x: done", "x: done")
