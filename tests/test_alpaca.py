from __future__ import annotations

# --- the dataset studio -----------------------------------------------------------------------
import io  # noqa: E402
import json  # noqa: E402
import os
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402
import pytest
from sklearn.model_selection import train_test_split  # noqa: E402

from workbench.common.errors import ConfigError, DocumentError, NotFoundError, OfflineError, WorkbenchError  # noqa: E402
from workbench.dataset import alpaca, alpaca_checks, alpaca_io  # noqa: E402
from workbench.dataset.alpaca import DatasetConfig, SplitConfig  # noqa: E402
from workbench.dataset.splitfiles import read_lock  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHATBOT = ROOT.parent / "shared" / "data" / "chatbot" / "ChatbotData.csv"
QA = [("현금으로 결제가 가능한가요?", "네, 현금 결제가 가능합니다."), ("아이스크림은 어디 있나요?", "2번 통로 냉동고에 있습니다."),
      ("Do you take cards?", "Yes, all major cards.")]
NO_TOK = dict(tokenizer="")  # most tests do not need the length check


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("encoding,bom", [("utf-8", False), ("utf-8", True), ("cp949", False)])
def test_csv_import_in_utf8_and_cp949_with_a_column_map(workspace, tmp_path, encoding, bom):
    text = "Q,A,label\n" + "".join(f"{q},\"{a}\",0\n" for q, a in QA)
    path = write_csv(tmp_path / "qa.csv", ("\ufeff" if bom else "") + text, encoding)
    report = alpaca.import_dataset(path, DatasetConfig(name="qa", **NO_TOK).with_map("instruction=Q,output=A"), workspace=workspace)
    assert report.encoding == ("utf-8-sig" if bom else encoding) and report.issues == []  # the encoding found, BOM included
    assert report.info.column_map == {"instruction": "Q", "input": "", "output": "A"}
    assert alpaca.load_rows("qa", workspace) == [{"instruction": q, "input": "", "output": a, "label": "0"} for q, a in QA]


def test_a_wrong_encoding_is_named(workspace, tmp_path):
    path = write_csv(tmp_path / "qa.csv", "Q,A\n현금,네\n", "cp949")
    with pytest.raises(DocumentError, match="not valid UTF-8 text"):
        alpaca.import_dataset(path, DatasetConfig(name="qa", encoding="utf-8", **NO_TOK), workspace=workspace)


def test_json_jsonl_and_datasets_folder_imports(workspace, tmp_path):
    rows = [{"instruction": q, "input": "", "output": a, "chunk_id": f"c{i}"} for i, (q, a) in enumerate(QA)]
    (tmp_path / "list.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": rows}, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    from datasets import Dataset, DatasetDict

    DatasetDict({"train": Dataset.from_list(rows[:2]), "test": Dataset.from_list(rows[2:])}).save_to_disk(str(tmp_path / "saved"))
    for name, src, kind in [("a", "list.json", "json"), ("b", "wrapped.json", "json"), ("c", "rows.jsonl", "jsonl"),
                            ("d", "saved", "datasets-folder")]:
        report = alpaca.import_dataset(tmp_path / src, DatasetConfig(name=name, **NO_TOK), workspace=workspace)
        assert report.info.source["kind"] == kind
        assert alpaca.load_rows(name, workspace) == rows, name
    report = alpaca.import_dataset(tmp_path / "saved", DatasetConfig(name="e", hub_split="test", **NO_TOK), workspace=workspace)
    assert alpaca.load_rows("e", workspace) == rows[2:] and report.info.source["splits"] == ["test"]
    (tmp_path / "bad.jsonl").write_text('{"instruction": "a", "output": "b"}\n{"instruction": oops}\n', encoding="utf-8")
    with pytest.raises(DocumentError, match="bad.jsonl, line 2: not valid JSON"):
        alpaca.import_dataset(tmp_path / "bad.jsonl", DatasetConfig(name="f", **NO_TOK), workspace=workspace)
    with pytest.raises(NotFoundError, match="neither an existing file"):
        alpaca.import_dataset(tmp_path / "nope.csv", DatasetConfig(name="g", **NO_TOK), workspace=workspace)


def test_hub_import_offline_is_a_clear_error(workspace):
    with pytest.raises(OfflineError, match="Cannot load the dataset someone/shop-qa: the Hugging Face Hub is offline"):
        alpaca.import_dataset("someone/shop-qa", DatasetConfig(name="hub", data_files="train_ds.csv", **NO_TOK), workspace=workspace)
    assert alpaca.list_datasets(workspace) == []


def test_every_bad_row_kind_is_listed_with_its_row_and_nothing_is_dropped(workspace, tmp_path, smollm2_dir):
    rows = [
        {"instruction": "현금 돼요?", "input": "", "output": "네, 됩니다."},  # 1 ok
        {"instruction": "  ", "input": "", "output": "답"},  # 2 missing instruction
        {"instruction": "카드?", "input": "", "output": None},  # 3 missing output
        {"instruction": 42, "input": "", "output": "숫자"},  # 4 non-text
        {"instruction": "깨진 글자 \ufffd", "input": "", "output": "답"},  # 5 non-text (decoded with the wrong encoding)
        {"instruction": "긴 답", "input": "", "output": "가" * 400},  # 6 too long for max_tokens=64
        {"instruction": "현금 돼요?", "input": "", "output": "네, 됩니다."},  # 7 exact duplicate of 1
        {"instruction": "현금  돼요!", "input": "", "output": "네 됩니다"},  # 8 near duplicate of 1
        {"instruction": "현금 돼요", "input": "", "output": "아니요."},  # 9 same question as 1, other answer
    ]
    (tmp_path / "bad.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    report = alpaca.import_dataset(tmp_path / "bad.json", DatasetConfig(name="bad", max_tokens=64), workspace=workspace)
    assert [(i.row, i.kind, i.other_row) for i in report.issues] == [
        (2, "missing_instruction", None), (3, "missing_output", None), (4, "non_text", None), (5, "non_text", None),
        (6, "too_long", None), (7, "duplicate", 1), (8, "near_duplicate", 1), (9, "same_question", 1)]
    msgs = {i.row: i.message for i in report.issues}
    assert msgs[4] == "row 4: instruction is a int (42), not text"
    assert "U+FFFD" in msgs[5] and msgs[6].startswith("row 6: ") and msgs[6].endswith(
        "tokens, more than max_tokens = 64; training cuts it to 64 tokens")
    assert report.info.rows == 9 and len(alpaca.load_rows("bad", workspace)) == 9  # kept until the user decides
    # a row too long is a warning (training truncates it), not an error that blocks the split
    with pytest.raises(ConfigError, match=r"has 4 problems in rows 2, 3, 4, 5 .*--drop-errors"):
        alpaca.split_dataset("bad", workspace=workspace)
    # fix what can be fixed, drop the rest: the user's two choices
    alpaca.save_rows("bad", alpaca_checks.fix_rows(alpaca.load_rows("bad", workspace)), workspace)
    issues = alpaca.check_dataset("bad", workspace=workspace)
    assert alpaca_checks.issue_rows(issues) == [2, 3] and alpaca.load_rows("bad", workspace)[3]["instruction"] == "42"
    info = alpaca.drop_rows("bad", alpaca_checks.issue_rows(issues), workspace)
    assert info.rows == 7 and [i.kind for i in alpaca.check_dataset("bad", workspace=workspace)] == [
        "too_long", "duplicate", "near_duplicate", "same_question"]
    with pytest.raises(ConfigError, match=r"Rows \[99\] do not exist"):
        alpaca.drop_rows("bad", [99], workspace)
    assert json.loads((info.path / "meta.json").read_text(encoding="utf-8"))["history"][-1]["action"] == "dropped 2 rows"


def make_rows(n: int) -> list[dict[str, str]]:
    return [{"instruction": f"{i}번 상품의 가격은 얼마인가요? ({i * 7 % 13})", "input": "", "output": f"{i * 1000}원입니다.",
             "chunk_id": f"c{i % 5}", "source": "price_list.csv"} for i in range(n)]


def test_split_matches_scikit_learn_and_reproduces(workspace, tmp_path):
    rows = make_rows(50)
    (tmp_path / "rows.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    alpaca.import_dataset(tmp_path / "rows.json", DatasetConfig(name="p", **NO_TOK), workspace=workspace)
    report = alpaca.split_dataset("p", workspace=workspace)
    assert report.sizes == {"train": 36, "validation": 9, "test": 5}
    # the tutorial: train_test_split(df, test_size=0.1, random_state=42), then 0.2 of train for validation
    df = pd.DataFrame(rows)
    train_full, test = train_test_split(df, test_size=0.1, random_state=42)
    train, val = train_test_split(train_full, test_size=0.2, random_state=42)
    for split, expected in (("train", train), ("validation", val), ("test", test)):
        assert alpaca.load_split("p", split, workspace) == expected.to_dict("records")
        csv = io.BytesIO(alpaca.split_file("p", split, "csv", workspace))
        assert pd.read_csv(csv, keep_default_na=False).equals(expected.reset_index(drop=True)), split
    assert alpaca.train_full_rows("p", workspace) == train_full.to_dict("records")
    meta = json.loads((report.info.path / "meta.json").read_text(encoding="utf-8"))
    assert {k: meta["split"][k] for k in ("seed", "test_size", "val_size", "sizes", "raw_rows")} == {
        "seed": 42, "test_size": 0.1, "val_size": 0.2, "sizes": report.sizes, "raw_rows": 50}
    assert meta["source"]["kind"] == "json" and meta["column_map"]["instruction"] == "instruction" and meta["created"]
    first = {s: alpaca.split_file("p", s, "csv", workspace) for s in alpaca.SPLITS}
    alpaca.split_dataset("p", workspace=workspace)
    assert {s: alpaca.split_file("p", s, "csv", workspace) for s in alpaca.SPLITS} == first  # same seed, same files
    other = alpaca.split_dataset("p", SplitConfig(seed=7, val_size=0.0), workspace=workspace)
    assert other.sizes == {"train": 45, "validation": 0, "test": 5} and alpaca.load_split("p", "validation", workspace) == []
    assert [r["instruction"] for r in alpaca.load_split("p", "test", workspace)] != test["instruction"].tolist()


def test_split_state_and_errors(workspace, tmp_path):
    (tmp_path / "rows.json").write_text(json.dumps(make_rows(3), ensure_ascii=False), encoding="utf-8")
    alpaca.import_dataset(tmp_path / "rows.json", DatasetConfig(name="tiny", **NO_TOK), workspace=workspace)
    with pytest.raises(NotFoundError, match="has not been split yet.*dataset split tiny"):
        alpaca.load_split("tiny", "train", workspace)
    with pytest.raises(ConfigError, match="Cannot split 3 rows with test_size=0.1, val_size=0.9"):
        alpaca.split_dataset("tiny", SplitConfig(val_size=0.9), workspace=workspace)
    with pytest.raises(ConfigError, match="is not one of"):
        alpaca.load_split("tiny", "dev", workspace)  # type: ignore[arg-type]
    with pytest.raises(NotFoundError, match="Dataset 'nope' does not exist"):
        alpaca.load_split("nope", "test", workspace)
    with pytest.raises(ConfigError, match="below the minimum"):
        SplitConfig(test_size=0.0)
    alpaca.split_dataset("tiny", SplitConfig(val_size=0.0), workspace=workspace)
    [info] = alpaca.list_datasets(workspace)
    assert (info.name, info.rows, info.sizes, info.split_stale) == ("tiny", 3, {"train": 2, "validation": 0, "test": 1}, False)
    alpaca.save_rows("tiny", make_rows(4), workspace)
    assert alpaca.dataset_info("tiny", workspace).split_stale  # edited after the split
    assert SplitConfig.from_dict(SplitConfig(seed=1).to_dict()).to_dict() == SplitConfig(seed=1).to_dict()
    assert DatasetConfig.from_dict(DatasetConfig(name="x").with_map("instruction=Q").to_dict()).instruction_column == "Q"


def test_leakage_flags_test_questions_that_nearly_repeat_training_ones():
    train = [{"instruction": "현금으로 결제가 가능한가요?", "output": "네"}, {"instruction": "주차장은 어디에 있나요?", "output": "지하"}]
    val = [{"instruction": "Where is the ice cream?", "output": "Aisle 2"}]
    test = [{"instruction": "현금으로 결제가 가능한가요", "output": "네"},  # same after normalisation
            {"instruction": "where is the ICE CREAM", "output": "Aisle 2"},  # same, in validation
            {"instruction": "주차장은 어디에 있나요? 지금", "output": "x"},  # close
            {"instruction": "환불은 며칠 안에 되나요?", "output": "7일"}]  # new
    leaks = alpaca_checks.find_leakage(train, test, validation=val, threshold=0.8)
    assert [(lk.test_row, lk.split, lk.train_row) for lk in leaks] == [(1, "train", 1), (2, "validation", 1), (3, "train", 2)]
    assert leaks[0].similarity == leaks[1].similarity == 1.0 and 0.8 <= leaks[2].similarity < 1.0
    assert [lk.test_row for lk in alpaca_checks.find_leakage(train, test, validation=val, threshold=0.99)] == [1, 2]
    assert alpaca_checks.normalize_text("Hello, World!  ") == "helloworld"


def test_leakage_is_written_by_split(workspace, tmp_path):
    rows = make_rows(30)
    rows[29] = dict(rows[3], output="중복 질문")  # the same question twice: one may land in test
    rows += [dict(rows[i], output=f"다른 답 {i}") for i in range(30)]  # every question twice, different answers
    (tmp_path / "dup.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    alpaca.import_dataset(tmp_path / "dup.json", DatasetConfig(name="dup", **NO_TOK), workspace=workspace)
    report = alpaca.split_dataset("dup", workspace=workspace)
    assert report.leaks and all(lk.similarity == 1.0 for lk in report.leaks)
    assert alpaca.load_leakage("dup", workspace) == report.leaks
    assert report.info.split["leakage"] == len(report.leaks)


# CI sets WORKBENCH_REQUIRE_SHARED_DATA=1 (its clone has ../shared beside it), so there the test runs or fails.
@pytest.mark.skipif(not CHATBOT.is_file() and not os.environ.get("WORKBENCH_REQUIRE_SHARED_DATA"),
                    reason=f"ChatbotData.csv is not at {CHATBOT} (CI keeps it in ../shared/data)")
def test_chatbotdata_import_and_split(workspace, smollm2_dir):
    report = alpaca.import_dataset(CHATBOT, DatasetConfig(name="chatbot").with_map("instruction=Q,output=A"), workspace=workspace)
    assert report.info.rows == 11823 and report.encoding == "utf-8"
    assert report.info.columns == ["instruction", "input", "output", "label"]
    s = alpaca_checks.summarize_issues(report.issues)
    assert s["errors"] == 0 and s["counts"]["duplicate"] > 0  # the corpus repeats some pairs; they are flagged, not dropped
    split = alpaca.split_dataset("chatbot", workspace=workspace)
    assert split.sizes == {"train": 8512, "validation": 2128, "test": 1183}
    _, expected_test = train_test_split(pd.read_csv(CHATBOT), test_size=0.1, random_state=42)
    assert [r["instruction"] for r in alpaca.load_split("chatbot", "test", workspace)] == expected_test["Q"].tolist()
    assert split.leaks and all(lk.similarity >= 0.9 for lk in split.leaks)


def test_column_maps(workspace, tmp_path):
    assert alpaca_io.parse_column_map("instruction=Q, output=A,input=") == {"instruction": "Q", "output": "A", "input": ""}
    with pytest.raises(ConfigError, match="has no '='"):
        alpaca_io.parse_column_map("Q")
    with pytest.raises(ConfigError, match="target 'answer' is not one of"):
        alpaca_io.parse_column_map("answer=A")
    path = write_csv(tmp_path / "qa.csv", "질문,답변,맥락\n현금 돼요?,네,가게\n")
    # Korean headers are recognised without a map; a context column only when mapped
    alpaca.import_dataset(path, DatasetConfig(name="auto", **NO_TOK), workspace=workspace)
    assert alpaca.load_rows("auto", workspace) == [{"instruction": "현금 돼요?", "input": "", "output": "네", "맥락": "가게"}]
    alpaca.import_dataset(path, DatasetConfig(name="mapped", **NO_TOK).with_map("input=맥락"), workspace=workspace)
    assert alpaca.load_rows("mapped", workspace)[0]["input"] == "가게"
    with pytest.raises(ConfigError, match=r"Column 'Question' \(mapped to instruction\) is not in the data. Columns: '질문', '답변', '맥락'"):
        alpaca.import_dataset(path, DatasetConfig(name="x", **NO_TOK).with_map("instruction=Question"), workspace=workspace)
    nocols = write_csv(tmp_path / "n.csv", "foo,bar\n1,2\n")
    with pytest.raises(ConfigError, match="No column for 'instruction'.*--map instruction=Q,output=A"):
        alpaca.import_dataset(nocols, DatasetConfig(name="x", **NO_TOK), workspace=workspace)
    with pytest.raises(ConfigError, match="already exists"):
        alpaca.import_dataset(path, DatasetConfig(name="auto", **NO_TOK), workspace=workspace)
    with pytest.raises(ConfigError, match="is not allowed"):
        DatasetConfig(name="../escape")


def test_name_for_suggests_a_valid_name_from_a_source():
    from workbench.dataset.alpaca import DatasetConfig, check_name

    assert DatasetConfig.name_for("/tmp/x/shop_qa_small.csv") == "shop_qa_small"
    assert DatasetConfig.name_for("/data/상점 FAQ (v2).csv") == "상점-FAQ-v2"
    assert DatasetConfig.name_for("beomi/KoAlpaca.v1", hub=True) == "KoAlpaca.v1"
    assert DatasetConfig.name_for("") == "dataset" and DatasetConfig.name_for("/x/---.csv") == "dataset"
    check_name(DatasetConfig.name_for("/data/상점 FAQ (v2).csv"))


# --- concurrent writers -----------------------------------------------------------------------------------------

SPLITTER = """
import sys
from workbench.dataset.alpaca import SplitConfig, split_dataset
from workbench.common.config import Workspace
ws, first = Workspace.default(), int(sys.argv[1])
for seed in range(first, first + int(sys.argv[2])):
    split_dataset("conc", SplitConfig(seed=seed, test_size=0.1, val_size=0.2), workspace=ws)
"""


def _assert_split_is_whole(workspace, n_rows: int) -> int:
    """Every row in exactly one split, the files those of meta.json's seed, meta.json's sizes those of the files."""
    from workbench.dataset.alpaca import dataset_dir, load_split, split_indices

    meta = json.loads((dataset_dir("conc", workspace) / "meta.json").read_text(encoding="utf-8"))["split"]
    parts = {s: [r["instruction"] for r in load_split("conc", s, workspace)] for s in ("train", "validation", "test")}
    every = sorted(q for part in parts.values() for q in part)
    assert every == sorted(f"Q{i}" for i in range(n_rows))  # no row twice, none missing
    tr, va, te = split_indices(n_rows, SplitConfig(seed=meta["seed"], test_size=meta["test_size"], val_size=meta["val_size"]))
    assert [parts["train"], parts["validation"], parts["test"]] == [[f"Q{i}" for i in idx] for idx in (tr, va, te)]
    assert meta["sizes"] == {s: len(p) for s, p in parts.items()}
    csv_test = pd.read_csv(io.BytesIO(alpaca.split_file("conc", "test", "csv", workspace)), dtype=str, keep_default_na=False)
    assert list(csv_test["instruction"]) == parts["test"]
    return meta["seed"]


def _conc_dataset(workspace, n_rows: int = 120) -> None:
    rows = [{"instruction": f"Q{i}", "input": "", "output": f"A{i}"} for i in range(n_rows)]
    alpaca.save_dataset("conc", rows, source={"kind": "test"}, workspace=workspace, settings={"tokenizer": ""})


def test_two_processes_splitting_one_dataset_never_mix_their_files(workspace):
    import subprocess
    import sys

    _conc_dataset(workspace)
    root = Path(__file__).resolve().parent.parent
    procs = [subprocess.Popen([sys.executable, "-c", SPLITTER, str(first), "50"], cwd=root) for first in (1, 1001)]
    seen = set()
    while any(p.poll() is None for p in procs):  # a reader during the writes always finds one whole split
        with read_lock(alpaca.dataset_dir("conc", workspace)):
            if alpaca.dataset_info("conc", workspace).split:
                seen.add(_assert_split_is_whole(workspace, 120))
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    assert _assert_split_is_whole(workspace, 120) in (50, 1050)  # the last writer's seed
    assert len(seen) > 1  # the reader saw the writers at work


def test_two_threads_splitting_one_dataset_run_one_after_the_other(workspace):
    import threading

    _conc_dataset(workspace)
    errors: list[BaseException] = []

    def split(first: int) -> None:
        try:
            for seed in range(first, first + 50):
                alpaca.split_dataset("conc", SplitConfig(seed=seed), workspace=workspace)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=split, args=(first,)) for first in (1, 1001)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert _assert_split_is_whole(workspace, 120) in (50, 1050)


def test_a_failed_import_leaves_nothing_behind(workspace, tmp_path):
    path = write_csv(tmp_path / "qa.csv", "Q,A\n현금,네\n")
    with pytest.raises(WorkbenchError, match="'/nonexistent' is neither"):
        alpaca.import_dataset(path, DatasetConfig(name="qa", tokenizer="/nonexistent").with_map("instruction=Q,output=A"),
                              workspace=workspace)
    assert alpaca.list_datasets(workspace) == [] and not alpaca.dataset_dir("qa", workspace).exists()
    alpaca.import_dataset(path, DatasetConfig(name="qa", **NO_TOK).with_map("instruction=Q,output=A"), workspace=workspace)
    before = alpaca.load_rows("qa", workspace)
    with pytest.raises(WorkbenchError, match="'/nonexistent' is neither"):  # a failed replace keeps the old dataset
        alpaca.import_dataset(path, DatasetConfig(name="qa", tokenizer="/nonexistent").with_map("instruction=Q,output=A"),
                              workspace=workspace, overwrite=True)
    assert alpaca.load_rows("qa", workspace) == before
    assert sorted(p.name for p in workspace.datasets.iterdir() if not p.name.endswith(".lock")) == ["qa"]


def test_the_length_limit_follows_the_model_and_long_rows_are_counted_warnings(workspace, tmp_path, smollm2_dir):
    from workbench.dataset.alpaca_checks import model_max_tokens

    assert model_max_tokens("smollm2-135m", workspace) == 8192  # SmolLM2's max_position_embeddings, not 1024
    rows = [{"instruction": f"질문 {i}", "input": "", "output": "가나다라 " * (400 if i % 4 == 0 else 5)} for i in range(8)]
    (tmp_path / "faq.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    report = alpaca.import_dataset(tmp_path / "faq.json", DatasetConfig(name="faq"), workspace=workspace)
    assert [i for i in report.issues if i.is_error] == []  # 1,600 characters of Hangul fit in 8192 tokens
    report = alpaca.import_dataset(tmp_path / "faq.json", DatasetConfig(name="faq", max_tokens=256), workspace=workspace,
                                   overwrite=True)
    summary = alpaca_checks.summarize_issues(report.issues)
    assert (summary["errors"], summary["counts"]) == (0, {"too_long": 2})
    assert sum(alpaca.split_dataset("faq", workspace=workspace).sizes.values()) == 8  # nothing lost before the split


# --- a split is whole or absent: kill -9 and a full disk (issue #23) ----------------------------------------------


def _split_agrees(workspace, name: str, n_rows: int) -> int:
    """The split meta.json names is the split its files hold: every row once, in the positions of meta.json's seed, the
    CSVs equal to the JSONL, and not stale. Returns the seed."""
    folder = alpaca.dataset_dir(name, workspace)
    with read_lock(folder):
        parts = alpaca.load_splits(name, workspace=workspace)
        csvs = {s: pd.read_csv(io.BytesIO(alpaca.split_file(name, s, "csv", workspace)), dtype=str, keep_default_na=False)
                for s in alpaca.SPLITS}
    record = parts["meta"]
    tr, va, te = alpaca.split_indices(n_rows, SplitConfig(seed=record["seed"], test_size=record["test_size"],
                                                          val_size=record["val_size"]))
    for split, idx in zip(alpaca.SPLITS, (tr, va, te)):
        assert [r["instruction"] for r in parts[split]] == [f"Q{i}" for i in idx], (split, record["seed"])
        assert list(csvs[split]["instruction"]) == [f"Q{i}" for i in idx], (split, record["seed"])
    info = alpaca.dataset_info(name, workspace)
    assert info.sizes == {s: len(parts[s]) for s in alpaca.SPLITS} and not info.split_stale
    return record["seed"]


def _split_rows(workspace, name: str, n: int) -> None:
    rows = [{"instruction": f"Q{i}", "input": "", "output": f"가게는 아홉 시에 엽니다 ({i})"} for i in range(n)]
    alpaca.save_dataset(name, rows, source={"kind": "test"}, workspace=workspace, settings={"tokenizer": ""})
    alpaca.split_dataset(name, SplitConfig(seed=42), workspace=workspace)


def test_a_split_killed_at_any_point_leaves_files_and_meta_json_agreeing(workspace):
    """kill -9 of a real `workbench dataset split` child at several points: meta.json and the files it names always
    hold one and the same split, the old one or the new one (before: the files carried the new seed, meta.json the
    old one, and split_stale was false)."""
    import signal
    import subprocess
    import sys

    n = 5000
    _split_rows(workspace, "big", n)
    root = Path(__file__).resolve().parent.parent
    # (progress line to wait for, seconds after it): every phase, and several moments of the writing
    points = [("", 0.5), ("Checking rows", 0.0), ("Checking test questions", 0.0), ("Checking test questions", 0.2),
              ("Writing", 0.0), ("Writing", 0.01), ("Writing", 0.03), ("Writing", 0.06)]
    outcomes = []
    for marker, delay in points:
        proc = subprocess.Popen([sys.executable, "-m", "workbench", "dataset", "split", "big", "--seed", "7"], cwd=root,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if marker:
            for line in proc.stderr:
                if marker in line:
                    break
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        outcomes.append(_split_agrees(workspace, "big", n))
    assert outcomes[:3] == [42, 42, 42] and set(outcomes) <= {42, 7}, outcomes  # killed before writing: the old split
    # what the killed ones left is removed by the next split
    alpaca.split_dataset("big", SplitConfig(seed=9), workspace=workspace)
    assert _split_agrees(workspace, "big", n) == 9
    folder = alpaca.dataset_dir("big", workspace)
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "raw.jsonl", alpaca.dataset_info("big", workspace).split["dir"]]


def test_a_split_on_a_full_disk_keeps_the_previous_split_whole(tmp_path):
    """A real 2 MiB file system that fills up during the split (before: a traceback, and train.csv of the new seed
    held test questions of the old one). Now: one line that says what was kept, and the previous split intact."""
    from conftest import fill_disk, small_disk

    from workbench.common.config import Workspace
    from workbench.common.errors import StorageError

    with small_disk(tmp_path / "disk", 2048) as disk:
        ws = Workspace(disk / "ws").ensure()
        _split_rows(ws, "faq", 2000)
        created = alpaca.dataset_info("faq", ws).split["created"]
        filler = fill_disk(disk, 40_000)
        with pytest.raises(StorageError) as e:
            alpaca.split_dataset("faq", SplitConfig(seed=7), workspace=ws)
        assert str(e.value).startswith(f"Splitting dataset 'faq': the disk is full ({ws.datasets / 'faq'}). ")
        assert str(e.value).endswith(f"Nothing changed: the previous split (seed 42, {created}) is kept whole. Free some "
                                     f"space and try again.") and "\n" not in str(e.value)
        assert e.value.ko.startswith("데이터셋 'faq' 분할: 디스크가 가득 찼습니다")
        assert _split_agrees(ws, "faq", 2000) == 42
        folder = alpaca.dataset_dir("faq", ws)
        assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == []  # nothing half-written left
        filler.unlink()
        alpaca.split_dataset("faq", SplitConfig(seed=7), workspace=ws)
        assert _split_agrees(ws, "faq", 2000) == 7


def test_readers_do_not_wait_for_a_running_split_and_a_waiting_writer_says_why(workspace):
    """Issue #23: readers of a dataset waited for the whole split (85 s for 100,000 rows), with no word. A real child
    splits; meanwhile a reader gets the previous split at once, and a second split says that it waits."""
    import subprocess
    import sys
    import threading

    n = 10000
    _split_rows(workspace, "big", n)
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "dataset", "split", "big", "--seed", "7"],
                            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    for line in proc.stderr:
        if "Checking test questions" in line:  # the long part of a split: the writer holds the dataset
            break
    messages: list[str] = []
    second = threading.Thread(target=lambda: alpaca.split_dataset("big", SplitConfig(seed=8), workspace=workspace,
                                                                 progress=lambda m, f: messages.append(m)))
    second.start()
    t0 = time.monotonic()
    parts = alpaca.load_splits("big", workspace=workspace)
    waited = time.monotonic() - t0
    still_running = proc.poll() is None
    assert proc.wait(120) == 0
    second.join(120)
    assert still_running and waited < 1.0 and parts["meta"]["seed"] == 42, (still_running, waited)
    assert messages[0] == "Waiting: dataset 'big' is being changed by another process (a split takes a while for many rows)"
    assert messages[0].ko.startswith("기다리는 중: 다른 프로세스가 데이터셋 'big'을(를) 바꾸고 있습니다")
    assert _split_agrees(workspace, "big", n) == 8
