"""Summaries and report files with exact numbers (workbench.compare.report)."""

from __future__ import annotations

from workbench.compare.evaluation import EvalConfig, load_summary
from workbench.compare.report import pair_winners, summarize, write_report


def _literal_results():
    def rec(row, source, answer, reference, **kw):
        from workbench.compare.evaluation import score_answer

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
