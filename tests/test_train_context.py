"""RAG-aware fine-tuning (workbench.training.train_context): the context of every training row, the oracle share, distractors,
determinism, fitting rows to max_seq_length without touching the answer, the same prompt bytes in training and at
answer time, and a real short run with context on SmolLM2."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from workbench.answers import answer
from workbench.common.errors import ConfigError
from workbench.kb.retrieval import RetrievalConfig, RetrievedChunk
from workbench.models.prompts import context_prompt, cut_text, format_example, format_prompt
from workbench.training.finetune import TrainConfig
from workbench.training.train_context import (
    answer_overlap,
    build_context,
    fit_context_rows,
    oracle_rows,
    prepare_context,
    read_context,
    select_chunks,
)

# A small fake collection: chunk i holds fact i; row i asks for fact i (the oracle is chunk i).
FACTS = [f"Box {i} holds {w} marbles." for i, w in enumerate(["three", "seven", "nine", "twelve", "forty", "eighty"])]
CHUNKS = [RetrievedChunk(f"Notes. {fact} Other notes.", 1.0 - i / 10, {"source": f"doc{i}.md", "chunk_id": f"c{i}"})
          for i, fact in enumerate(FACTS)]


def fake_retriever(calls: list | None = None):
    """Retrieval that ranks the chunks by a fixed rotation of the question's number (the oracle is not always first),
    honours a source or chunk_id filter, and returns k of them."""
    def retrieve(query: str, cfg: RetrievalConfig) -> list[RetrievedChunk]:
        if calls is not None:
            calls.append((query, cfg.k, cfg.filter))
        n = int(query.split()[1]) if query.split()[1].isdigit() else 0
        order = [CHUNKS[(n + j) % len(CHUNKS)] for j in (1, 0, 2, 3, 4, 5)]
        where = cfg.filter or {}
        if "source" in where:
            order = [c for c in order if c.metadata["source"] in where["source"]["$in"]]
        if "chunk_id" in where:
            order = [c for c in order if c.id == where["chunk_id"]]
        return order[: cfg.k]
    return retrieve


def rows(n: int = 6, **extra) -> list[dict]:
    return [{"instruction": f"Box {i} holds how many marbles?", "input": "", "output": f"Box {i} holds "
             f"{FACTS[i].split()[3]} marbles.", **extra} for i in range(n)]


def config(**changes) -> TrainConfig:
    return TrainConfig(**{"dataset": "boxes", "context": "raft", "context_collection": "shop", "context_k": 3, **changes})


# --- small pieces ---------------------------------------------------------------------------------------------


def test_answer_overlap_counts_the_answers_character_bigrams_in_the_chunk():
    assert answer_overlap("ab cd", "xxabcdxx") == 1.0  # spaces ignored: "abcd" -> ab, bc, cd
    assert answer_overlap("abcd", "ab") == pytest.approx(1 / 3)
    assert answer_overlap("", "anything") == 0.0
    assert answer_overlap("현금 결제", "현금결제가 됩니다") == 1.0


def test_oracle_rows_are_exactly_the_share_and_seeded():
    assert len(oracle_rows(10, 0.8, 1)) == 8 and len(oracle_rows(7, 0.5, 1)) == 4  # round(3.5) = 4
    assert oracle_rows(10, 0.8, 1) == oracle_rows(10, 0.8, 1) != oracle_rows(10, 0.8, 2)
    assert oracle_rows(5, 0.0, 1) == set() and oracle_rows(5, 1.0, 1) == set(range(5))


def test_cut_text_keeps_whole_words_and_is_idempotent():
    assert cut_text("  hello world this is  ", 13) == "hello world"
    assert cut_text("가나다라마바사", 4) == "가나다라"  # no space in the window: cut at the limit
    assert cut_text("short", 0) == cut_text("short", 99) == "short"
    once = cut_text(FACTS[0] * 5, 40)
    assert cut_text(once, 40) == once and len(once) <= 40


def test_a_context_setting_without_a_collection_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match="context_collection"):
        TrainConfig(context="raft")
    cfg = config(context_max_chars=300, context_oracle_share=0.6)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # round-trips through config.json


# --- building the context ---------------------------------------------------------------------------------------


def test_raft_puts_the_oracle_in_the_share_of_rows_and_distractors_elsewhere():
    lines, summary = build_context(config(context_oracle_share=0.5), {"train": rows(6)}, retrieve=fake_retriever())
    assert summary["with_oracle"] == 3 and summary["distractors_only"] == 3 and summary["no_oracle_found"] == 0
    for i, line in enumerate(lines):
        ids = [c["metadata"]["chunk_id"] for c in line["chunks"]]
        assert line["oracle"] == f"c{i}" and line["oracle_by"] == "overlap"  # no source column: the answer's chunk
        assert len(ids) == 3 and len(set(ids)) == 3
        assert (f"c{i}" in ids) is line["oracle_in_context"]  # distractors never include the oracle


def test_the_context_is_deterministic_and_the_seed_changes_it():
    a, _ = build_context(config(), {"train": rows(6)}, retrieve=fake_retriever())
    b, _ = build_context(config(), {"train": rows(6)}, retrieve=fake_retriever())
    c, _ = build_context(config(seed=7), {"train": rows(6)}, retrieve=fake_retriever())
    assert a == b and a != c


def test_retrieved_mode_keeps_the_retrievers_order_and_k():
    lines, summary = build_context(config(context="retrieved", context_k=2), {"train": rows(2)},
                                   retrieve=fake_retriever())
    assert [c["metadata"]["chunk_id"] for c in lines[0]["chunks"]] == ["c1", "c0"]
    assert summary["with_oracle"] == 0 and lines[0]["oracle"] is None


def test_a_rows_source_file_or_chunk_id_picks_its_oracle():
    calls: list = []
    retrieve = fake_retriever(calls)
    base = RetrievalConfig(k=3)
    pool = retrieve("Box 2 holds", base.replace(k=4))
    row = {"instruction": "Box 2 holds how many?", "output": "unrelated words", "source": "docs/doc4.md"}
    chunks, what = select_chunks(row, pool, mode="raft", k=3, with_oracle=True, rng=random.Random(0), retrieve=retrieve,
                                 base=base)
    assert what == {"oracle": "c4", "oracle_by": "source", "oracle_in_context": True}
    assert calls[-1][2] == {"source": {"$in": ["doc4.md"]}}  # the file name, as chunks record it
    row = {"instruction": "Box 2 holds how many?", "output": "x", "chunk_id": "c5"}
    chunks, what = select_chunks(row, pool, mode="raft", k=3, with_oracle=False, rng=random.Random(0),
                                 retrieve=retrieve, base=base)
    assert what["oracle_by"] == "chunk_id" and "c5" not in [c.id for c in chunks]


def test_a_row_without_a_findable_oracle_keeps_the_retrieved_chunks_and_is_counted():
    odd = [{"instruction": "Box 1 holds how many?", "input": "", "output": "zzzz qqqq"}]
    lines, summary = build_context(config(context_oracle_share=1.0), {"train": odd}, retrieve=fake_retriever())
    assert summary["no_oracle_found"] == 1 and lines[0]["oracle_in_context"] is None
    assert [c["metadata"]["chunk_id"] for c in lines[0]["chunks"]] == ["c2", "c1", "c3"]


def test_chunks_are_cut_to_max_chars_and_the_file_is_read_back_on_resume(tmp_path, workspace):
    cfg = config(context_max_chars=12)
    parts, summary = prepare_context(tmp_path, cfg, {"train": rows(4), "validation": rows(2)}, workspace,
                                     retrieve=fake_retriever())
    assert len(parts["train"]) == 4 and len(parts["validation"]) == 2 and summary["rows"] == 6
    assert all(len(c["text"]) <= 12 for line in read_context(tmp_path) for c in line["chunks"])
    assert json.loads((tmp_path / "context.json").read_text())["rows_by_split"] == {"train": 4, "validation": 2}
    # a resume reads the file: no retrieval (the collection "shop" does not even exist here)
    again, _ = prepare_context(tmp_path, cfg, {"train": rows(4), "validation": rows(2)}, workspace)
    assert again == parts and len(read_context(tmp_path, 2)) == 2


# --- fitting to max_seq_length, and the same bytes as the answer path -----------------------------------------------


@pytest.fixture(scope="module")
def tok(smollm2_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(smollm2_dir))


def test_rows_too_long_lose_context_never_the_answer(tok):
    long = [{"text": ("word " * 200).strip(), "metadata": {"source": f"d{j}.md"}} for j in range(3)]
    lines = [{"instruction": "Q one?", "input": "", "output": "The answer stays whole.", "chunks": long},
             {"instruction": "Q two?", "input": "", "output": "Short.", "chunks": [dict(long[0], text="tiny")]}]
    out, stats = fit_context_rows(lines, tok, "alpaca", 200, k=3, max_chars=0, lang="en")
    assert stats["rows"] == 2 and stats["truncated_rows"] == 1 and stats["context_dropped_rows"] == 0
    assert [r["output"] for r in out] == ["The answer stays whole.", "Short."]
    for r in out:
        ex = format_example(r, template="alpaca", tokenizer=tok)
        assert len(tok(ex["prompt"] + ex["completion"], add_special_tokens=False)["input_ids"]) <= 200
    assert "[3]" in out[0]["input"] and len(out[0]["input"]) < 3 * 999  # all three chunks, each shortened
    assert stats["extra_tokens"] == stats["context_tokens"] - stats["plain_tokens"] > 0
    # a question and answer that alone fill max_len: the context goes, the row is counted
    _, stats = fit_context_rows(lines[:1], tok, "alpaca", 40, k=3, max_chars=0, lang="en")
    assert stats["context_dropped_rows"] == 1


class _Gen:
    """The part of a Generator the prompt path uses: the template's text with the tokenizer."""

    def __init__(self, tokenizer):
        self.tok = tokenizer

    def format_prompt(self, instruction, input, *, adapter=None, template="alpaca"):
        return format_prompt(instruction, input, template=template, tokenizer=self.tok)


def test_a_context_runs_fine_tuned_rag_prompt_is_byte_identical_to_its_training_rows(tok):
    cfg = config(context="retrieved", context_max_chars=30, context_lang="en")
    question = "Box 3 holds how many marbles?"
    retrieved = fake_retriever()(question, RetrievalConfig(k=3))
    lines, _ = build_context(cfg, {"train": [{"instruction": question, "input": "", "output": "twelve"}]},
                             retrieve=lambda q, c: retrieved)
    fitted, _ = fit_context_rows(json.loads(json.dumps(lines)), tok, "alpaca", 512, k=3, max_chars=30, lang="en")
    trained = format_example(fitted[0], template="alpaca", tokenizer=tok)["prompt"]

    class Run:
        config = cfg
        id = "r"

    setup = answer.AnswerSetup(workspace=None, generator=_Gen(tok), adapter="r", template="alpaca", collection="shop",
                               rag_template="Only: {question}", lang="ko", context=answer.run_context(Run()))
    _, _, asked = answer.prompt_for(setup, "ft_rag", question, "", retrieved)
    assert asked == trained
    assert setup.context == {"k": 3, "max_chars": 30, "lang": "en", "collection": "shop"}
    _, _, base_rag = answer.prompt_for(setup, "rag", question, "", retrieved)  # the other RAG sources: unchanged
    assert "Only: " + question in base_rag and base_rag != asked
    instruction, input = context_prompt(question, "", retrieved, k=3, max_chars=30, lang="en")
    assert input.count("\n[") == 2 and all(len(part) <= 30 + 12 for part in input.split("\n\n"))


def test_a_control_asks_base_rag_and_another_runs_fine_tuned_rag_with_the_context_prompt(tok):
    """bench/compare_loop.py --control-short-context: the context set explicitly for chosen RAG sources gives them the
    context run's prompt bytes (only the weights then differ); non-RAG sources cannot take it."""
    question = "Box 3 holds how many marbles?"
    retrieved = fake_retriever()(question, RetrievalConfig(k=3))
    ctx = {"k": 2, "max_chars": 30, "lang": "en", "collection": "shop"}
    setup = answer.AnswerSetup(workspace=None, generator=_Gen(tok), adapter="plain", template="alpaca", collection="shop",
                               lang="ko")
    whole = answer.prompt_for(setup, "rag", question, "", retrieved)[2]
    setup.context = ctx  # the default: only ft_rag reads the context rule
    assert answer.prompt_for(setup, "rag", question, "", retrieved)[2] == whole
    short = answer.prompt_for(setup, "ft_rag", question, "", retrieved)[2]
    assert short == format_prompt(*context_prompt(question, "", retrieved, k=2, max_chars=30, lang="en"),
                                  template="alpaca", tokenizer=tok)
    setup.context_sources = ("rag", "ft_rag")
    assert answer.prompt_for(setup, "rag", question, "", retrieved)[2] == short != whole
    assert answer.prompt_for(setup, "base", question, "", retrieved)[2] != short  # no context for bare sources
    setup.context_sources = ("base", "rag")
    with pytest.raises(ConfigError, match="only RAG sources"):
        setup.check(["rag"])


def test_prepare_warns_when_fewer_chunks_are_retrieved_than_the_run_was_trained_with():
    ctx = {"k": 3, "max_chars": 0, "lang": "ko", "collection": "shop"}
    assert answer.context_warnings(ctx, "shop", 3) == []
    warnings = answer.context_warnings(ctx, "other", 2)
    assert "only 2 are retrieved" in warnings[0] and "'other'" in warnings[1]


# --- a real collection and a real short run -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_ws(tmp_path_factory, smollm2_dir):
    """A workspace with a small real collection (the packaged embedding model) and a split dataset whose rows name
    their source file, and the packaged SmolLM2."""
    import csv

    from langchain_core.documents import Document

    from workbench.common.config import Workspace
    from workbench.dataset.alpaca import DatasetConfig, SplitConfig, import_dataset, split_dataset
    from workbench.kb import ingest
    from workbench.kb.chunking import ChunkingConfig

    root = tmp_path_factory.mktemp("ctx")
    ws = Workspace(root / "ws").ensure()
    ws.models.rmdir()
    ws.models.symlink_to(smollm2_dir.parent, target_is_directory=True)
    docs = [Document(f"{FACTS[i]} The shelf is number {i}. " * 3, metadata={"source": f"doc{i}.md", "file_type": "md"})
            for i in range(len(FACTS))]
    ingest.ingest_documents(docs, "boxes-kb", ChunkingConfig(chunk_size=120, chunk_overlap=0), workspace=ws)
    data = [[f"How many marbles are in box {i % 6}?", "", FACTS[i % 6], f"doc{i % 6}.md"] for i in range(20)]
    with (root / "boxes.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["instruction", "input", "output", "source"], *data])
    import_dataset(root / "boxes.csv", DatasetConfig(name="boxes", tokenizer=""), workspace=ws)
    split_dataset("boxes", SplitConfig(test_size=0.2, val_size=0.2), workspace=ws)
    return ws


def test_the_context_of_a_real_collection_finds_each_rows_source_chunk(shop_ws):
    from workbench.dataset.alpaca import load_split

    train = load_split("boxes", "train", shop_ws)
    assert train[0]["source"].startswith("doc")
    lines, summary = build_context(config(context_collection="boxes-kb", context_oracle_share=1.0), {"train": train},
                                   shop_ws)
    assert summary["oracle_by"] == {"source": len(train)} and summary["with_oracle"] == len(train)
    for row, line in zip(train, lines):
        oracle = [c for c in line["chunks"] if c["metadata"]["chunk_id"] == line["oracle"]]
        assert oracle and oracle[0]["metadata"]["source"] == row["source"]


def test_the_preview_counts_the_rows_a_length_would_cut_and_the_length_that_keeps_them(shop_ws):
    """Before the start: at a length shorter than the rows with context, every sampled row would be cut, and the length
    it names keeps them all (checked by asking again with it)."""
    from workbench.training.train_context import context_preview

    cfg = config(context_collection="boxes-kb", base_model="smollm2-135m", max_seq_length=64)
    got = context_preview(cfg, shop_ws, rows=5)
    assert (got["rows"], got["max_len"], got["cut"], got["share"]) == (5, 64, 5, 1.0)
    assert got["keeps_all"] % 64 == 0 and got["keeps_all"] > got["median_tokens"] > 64
    again = context_preview(cfg.replace(max_seq_length=got["keeps_all"]), shop_ws, rows=5)
    assert (again["cut"], again["share"], again["max_len"]) == (0, 0.0, got["keeps_all"])


def test_the_training_context_is_retrieved_with_the_collections_saved_settings(shop_ws):
    from workbench.kb.retrieval import save_retrieval
    from workbench.training.train_context import collection_retrieval

    assert collection_retrieval("boxes-kb", shop_ws, k=2).mode == "hybrid"
    save_retrieval("boxes-kb", {"mode": "dense"}, shop_ws)
    try:
        got = collection_retrieval("boxes-kb", shop_ws, k=2)
        assert (got.mode, got.k) == ("dense", 2)
    finally:
        save_retrieval("boxes-kb", None, shop_ws)


@pytest.mark.slow
def test_a_short_raft_run_trains_on_context_and_its_answers_use_the_same_prompt(shop_ws):
    from workbench.training.runs import start_training, wait_run

    cfg = TrainConfig(dataset="boxes", backend="transformers", prompt_template="alpaca", max_steps=2, eval_steps=2,
                      save_steps=2, per_device_train_batch_size=4, learning_rate=1e-3, warmup_steps=0, context="raft",
                      context_collection="boxes-kb", context_k=2, context_max_chars=60, context_lang="en")
    run = wait_run(start_training(cfg, shop_ws).id, shop_ws, timeout=600)
    assert run.state == "completed" and run.adapter_dir is not None, run.status
    assert (run.path / "context.jsonl").is_file() and run.status["context"]["rows"] == len(read_context(run.path))
    tokens = run.status["context_tokens"]
    assert tokens["token_ratio"] > 1 and tokens["truncated_rows"] == 0 and tokens["rows"] == run.status["train_rows"]
    assert answer.run_context(run) == {"k": 2, "max_chars": 60, "lang": "en", "collection": "boxes-kb"}


def test_a_missing_collection_fails_the_run_with_the_fix(shop_ws):
    cfg = config(context_collection="no-such-kb")
    with pytest.raises(Exception, match="no-such-kb"):
        prepare_context(Path(shop_ws.root) / "nowhere", cfg, {"train": rows(1)}, shop_ws)
