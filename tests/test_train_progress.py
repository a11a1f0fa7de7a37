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


def test_the_tracker_times_steps_and_writes_log_lines():
    from types import SimpleNamespace

    from workbench.train_progress import _Tracker

    state = SimpleNamespace(num_input_tokens_seen=0, global_step=0, max_steps=4, epoch=0.0, eval_steps=0)
    tr = _Tracker()
    tr.begin(state)
    assert tr.eta(state) is None  # no step yet
    tr.mark -= 2.0  # a step of 2 s
    state.global_step, state.num_input_tokens_seen, state.epoch = 1, 100, 0.25
    tr.step(state)
    assert 2.0 <= tr.train_time < 3.0 and tr.eta(state) == round(3 * tr.train_time, 1)
    record = tr.log_record(state, {"loss": 2.5, "learning_rate": 1e-3, "grad_norm": None})
    assert (record["step"], record["loss"], record["tokens_seen"]) == (1, 2.5, 100) and "grad_norm" not in record
    assert record["tokens_per_s"] == round(100 / tr.train_time, 1)
    assert tr.log_record(state, {"train_runtime": 9.0}) is None  # the final summary goes to status.json
    assert tr.summary(state)["train_step_seconds"] == round(tr.train_time, 2)
