"""Training progress files: metrics lines read back, the ETA text."""

from __future__ import annotations

import math

from workbench.training.train_progress import collect_metrics, eta_text


def test_collect_metrics_skips_a_half_written_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert collect_metrics(path) == []
    path.write_text('{"step": 1, "loss": 2.5}\n{"step": 2, "loss": 2.1}\n{"step": 3, "lo', encoding="utf-8")
    assert collect_metrics(path) == [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 2.1}]


def test_eta_text():
    assert [eta_text(s) for s in (None, math.inf, 0, 75, 3600 + 125)] == ["?", "?", "0m00s", "1m15s", "1h02m"]


def test_the_tracker_times_steps_and_writes_log_lines():
    from types import SimpleNamespace

    from workbench.training.train_progress import Tracker

    state = SimpleNamespace(num_input_tokens_seen=0, global_step=0, max_steps=4, epoch=0.0, eval_steps=0)
    tr = Tracker()
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


def test_the_run_says_when_it_evaluates_and_saves(tmp_path):
    """The last minutes of a run (the final evaluation, the adapter's saving) have an ETA of 0: the status says what
    the run does then, and `phase_text` turns it into the words the page shows instead of "0m00s"."""
    from types import SimpleNamespace

    from workbench.common.runfiles import read_json
    from workbench.training.train_progress import make_progress_callback, phase_text

    cb = make_progress_callback(tmp_path)
    args = SimpleNamespace(output_dir=str(tmp_path))
    state = SimpleNamespace(num_input_tokens_seen=0, global_step=0, max_steps=4, epoch=0.0, eval_steps=2,
                            is_world_process_zero=True, best_model_checkpoint=None)
    control = SimpleNamespace(should_evaluate=False, should_save=False, should_training_stop=False)
    cb.on_train_begin(args, state, control)

    def status() -> dict:
        return read_json(tmp_path / "status.json", {})

    state.global_step = 1
    cb.on_step_end(args, state, control)
    assert status()["phase"] == "training" and phase_text(status()) is None
    state.global_step, control.should_evaluate = 2, True
    cb.on_step_end(args, state, control)
    assert phase_text(status()) == "evaluating…" and phase_text(status()).ko == "평가 중…"
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 1.0})
    assert status()["phase"] == "training"
    state.global_step = 4
    cb.on_step_end(args, state, control)
    assert phase_text(status()) == "final evaluation…" and phase_text(status()).ko == "최종 평가 중…"
    cb.on_evaluate(args, state, control, metrics={"eval_loss": 0.9})
    assert phase_text(status()) == "saving the adapter…"
    cb.on_train_end(args, state, control)
    assert status()["phase"] == "saving"
    assert phase_text({**status(), "state": "completed"}) is None
