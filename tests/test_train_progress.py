"""Training progress files: metrics lines read back, the ETA text."""

from __future__ import annotations

import math

from workbench.train_progress import collect_metrics, eta_text


def test_collect_metrics_skips_a_half_written_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert collect_metrics(path) == []
    path.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.1}\n{"step": 3, "lo', encoding="utf-8")
    assert collect_metrics(path) == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.1}]


def test_eta_text():
    assert [eta_text(s) for s in (None, math.inf, 0, 75, 3600 + 125)] == ["?", "?", "0m00s", "1m15s", "1h02m"]
