"""An evaluation's settings and folder (workbench.compare.eval_config): the config's rules, its round trip, where
evaluations live."""

from __future__ import annotations

import pytest

from workbench.common.config import Workspace
from workbench.common.errors import ConfigError
from workbench.compare.eval_config import CONFIG_FILE, EvalConfig, evals_root, list_evaluations


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


def test_evaluations_live_under_their_run_or_under_evals(tmp_path):
    ws = Workspace(tmp_path)
    assert evals_root("r1", ws) == ws.runs / "r1" / "eval" and evals_root("", ws) == ws.root / "evals"
    for folder in (evals_root("", ws) / "20260101-000000-b", evals_root("r1", ws) / "20260101-000000-a"):
        folder.mkdir(parents=True)
        EvalConfig(dataset="d", sources=("base",)).save(folder / CONFIG_FILE)
    (evals_root("", ws) / "no-config").mkdir()  # not an evaluation: no config.json
    assert [p.name for p in list_evaluations(ws)] == ["20260101-000000-a", "20260101-000000-b"]
    assert [p.parent for p in list_evaluations(ws, "r1")] == [evals_root("r1", ws)]
    assert [p.name for p in list_evaluations(ws, "")] == ["20260101-000000-b"]
