"""The one answer path (workbench.answers.answer): sources, templates, and the same prompt on every path.

The regression this guards: a run trained with the `alpaca` template was prompted with `chat` on the Compare page
(a select drawn before a run was picked kept `chat`), and the batch evaluation started there inherited it, so base
and fine-tuned scored the same. Now the page, `workbench ask` and the evaluation build one row's fine-tuned prompt
through `answer.prompt_for`, byte for byte, with the run's own template.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apphelpers import open_app_page, split_csv_dataset

from workbench.answers import answer
from workbench.common.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_available_sources_follow_what_is_there():
    assert answer.available_sources(adapter=False, collection=False, endpoint=False) == ["base"]
    assert answer.available_sources(adapter=True, collection=True, endpoint=False) == ["base", "ft", "rag", "ft_rag"]
    assert answer.available_sources(adapter=False, collection=True, endpoint=True) == ["base", "rag", "api", "api_rag"]
    assert answer.source_label("ft_rag", "ko") == "파인튜닝 + RAG" and answer.source_label("ft_rag") == "fine-tuned + RAG"


def test_the_runs_own_template_is_the_default_and_another_one_warns():
    assert answer.choose_template(None, "alpaca", "chat", fine_tuned=True) == ("alpaca", [])
    assert answer.choose_template("auto", "alpaca", "chat", fine_tuned=True) == ("alpaca", [])
    assert answer.choose_template(None, None, "chat", fine_tuned=False) == ("chat", [])
    template, warnings = answer.choose_template("chat", "alpaca", "chat", fine_tuned=True)
    assert template == "chat" and len(warnings) == 1 and "trained with the 'alpaca' template" in warnings[0]
    assert answer.choose_template("chat", "alpaca", "chat", fine_tuned=False) == ("chat", [])  # base only: no adapter
    with pytest.raises(ConfigError, match="is not one of auto, alpaca-tutorial, alpaca, chat"):
        answer.choose_template("vicuna", None, "chat", fine_tuned=False)


def test_a_source_without_what_it_needs_is_a_clear_error(workspace):
    setup = answer.AnswerSetup(workspace)
    for source, message in (("base", "needs a local model"), ("api", "needs an OpenAI-compatible endpoint"),
                            ("nope", "Unknown answer source")):
        with pytest.raises(ConfigError, match=message):
            setup.check([source])


# --- with the real SmolLM2 and a real trained run -------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def alpaca_run(tmp_path_factory, smollm2_dir):
    """A short real training run with the `alpaca` template (SmolLM2 has a chat template, so `chat` would be the
    model's default), on a split dataset, in its own workspace."""
    from workbench.common.config import Workspace
    from workbench.training.finetune import TrainConfig
    from workbench.training.runs import start_training, wait_run

    root = tmp_path_factory.mktemp("answer")
    ws = Workspace(root / "ws").ensure()
    ws.models.rmdir()
    ws.models.symlink_to(smollm2_dir.parent, target_is_directory=True)
    split_csv_dataset(ws, "boxes", [[f"What color is box {i}?", "", f"Box {i} is {('red', 'blue')[i % 2]}."] for i in range(20)],
                      root, test_size=0.2, val_size=0.2)
    config = TrainConfig(dataset="boxes", backend="transformers", prompt_template="alpaca", max_steps=2, eval_steps=2,
                         save_steps=2, per_device_train_batch_size=4, learning_rate=1e-3, warmup_steps=0)
    run = wait_run(start_training(config, ws).id, ws, timeout=600)
    assert run.state == "completed" and run.adapter_dir is not None, run.status
    return ws, run


@pytest.mark.slow
def test_one_rows_fine_tuned_prompt_is_the_same_on_the_page_in_the_cli_and_in_the_evaluation(alpaca_run, monkeypatch):
    from workbench.compare.evaluation import EvalConfig, load_results, load_summary, run_evaluation
    from workbench.dataset.alpaca import load_split

    ws, run = alpaca_run
    monkeypatch.setenv("WORKBENCH_HOME", str(ws.root))
    row = load_split("boxes", "test", ws)[0]

    # The Compare page: pick the run first (the template select already exists then), then a test row.
    at = open_app_page("app_pages/compare.py")
    at.selectbox(key="compare.run").set_value(run.id).run()
    assert at.selectbox(key="compare.template").value == "auto"
    at.radio(key="compare.qmode").set_value("test").run()
    at.selectbox(key="compare.dataset").set_value("boxes").run()
    at.selectbox(key="compare.row").set_value(0).run()
    at.multiselect(key="compare.sources").set_value(["base", "ft"]).run()
    at.number_input(key="compare.max_new_tokens").set_value(6).run()
    at.button(key="compare.ask").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    result = at.session_state["compare.result"]
    page_prompt = result["answers"]["ft"]["prompt"]
    assert result["template"] == "alpaca" and result["warnings"] == []

    # The CLI.
    r = cli("ask", row["instruction"], "--run", run.id, "--max-new-tokens", "6", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["template"] == "alpaca" and out["source"] == "ft"

    r = cli("ask", row["instruction"], "--run", run.id, "--no-adapter", "--max-new-tokens", "6", "--json")
    assert r.returncode == 0, r.stderr
    base_out = json.loads(r.stdout)

    # The batch evaluation.
    folder = ws.root / "eval-check"
    run_evaluation(EvalConfig(dataset="boxes", run_id=run.id, sources=("base", "ft"), limit=1, embedding_model="",
                              generation={"max_new_tokens": 6}), folder, ws)
    assert load_summary(folder)["template"] == "alpaca" and load_summary(folder)["base_template"] == "chat"
    eval_prompts = {r["source"]: r["prompt"] for r in load_results(folder)}

    assert page_prompt == out["prompt"] == eval_prompts["ft"]
    assert "### Instruction:\n" + row["instruction"] in page_prompt and "<|im_start|>" not in page_prompt
    # The base model's own answer: SmolLM2 is instruction-tuned, so its chat template, the same bytes on every path.
    base_prompt = result["answers"]["base"]["prompt"]
    assert base_out["source"] == "base" and base_out["template"] == "chat"
    assert base_prompt == base_out["prompt"] == eval_prompts["base"] and "<|im_start|>user\n" in base_prompt

    # Another template for the run's adapter is allowed, with a warning.
    at.selectbox(key="compare.template").set_value("chat").run()
    at.button(key="compare.ask").click().run()
    assert any("trained with the 'alpaca' template" in w.value for w in at.warning)


@pytest.mark.slow
def test_a_batch_evaluation_started_on_the_page_uses_the_runs_template(alpaca_run, monkeypatch):
    from workbench.compare.eval_jobs import evaluation_status, list_evaluations
    from workbench.compare.evaluation import EvalConfig, load_summary

    ws, run = alpaca_run
    monkeypatch.setenv("WORKBENCH_HOME", str(ws.root))
    at = open_app_page("app_pages/compare.py")
    at.selectbox(key="compare.run").set_value(run.id).run()
    at.multiselect(key="compare.sources").set_value(["base", "ft"]).run()
    at.number_input(key="compare.max_new_tokens").set_value(4).run()
    at.number_input(key="compare.eval_limit").set_value(1).run()
    at.selectbox(key="compare.eval_embedding").set_value("").run()
    before = set(list_evaluations(ws))
    at.button(key="compare.eval_start").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    (folder,) = set(list_evaluations(ws)) - before
    assert EvalConfig.load(folder / "config.json").prompt_template is None  # auto: the run's own, resolved in the job
    deadline = time.time() + 300
    while evaluation_status(folder)["state"] in ("pending", "running") and time.time() < deadline:
        time.sleep(0.5)
    assert evaluation_status(folder)["state"] == "completed", (folder / "eval.log").read_text()
    assert load_summary(folder)["template"] == "alpaca"


@pytest.mark.slow
def test_ask_and_answer_block_give_the_same_greedy_text(alpaca_run, smollm2_dir):
    from workbench.answers.inference import GenerationConfig
    from workbench.dataset.alpaca import load_split

    ws, run = alpaca_run
    setup = answer.prepare(["base", "ft"], ws, run=run)
    settings = GenerationConfig(max_new_tokens=12)
    rows = load_split("boxes", "test", ws)[:3]
    items = [answer.Item(r["instruction"], r["input"]) for r in rows]
    for source in ("base", "ft"):
        block = answer.answer_block(items, source, setup, settings, batch_size=3)
        asked = [answer.ask(it.question, [source], setup, settings, row_input=it.row_input) for it in items]
        assert [b.text for b in block] == [a.results()[source].text for a in asked]
        assert [b.prompt for b in block] == [a.prompts[source] for a in asked]
    with pytest.raises(ConfigError, match="question is empty"):
        answer.ask("  ", ["base"], setup, settings)


def test_default_collection_is_the_one_the_runs_dataset_came_from(workspace):
    from types import SimpleNamespace

    from workbench.answers.answer import default_collection
    from workbench.dataset.alpaca import save_dataset

    save_dataset("gen", [{"instruction": "Where?", "input": "", "output": "Aisle 5."}], workspace=workspace,
                 source={"kind": "generated", "collection": "shop"})
    run = SimpleNamespace(config=SimpleNamespace(dataset="gen"))
    assert default_collection(run, ["aaa", "shop"], workspace) == "shop"
    assert default_collection(run, ["aaa", "zzz"], workspace) == "aaa"  # its collection is gone: the first
    assert default_collection(SimpleNamespace(config=SimpleNamespace(dataset="deleted")), ["aaa"], workspace) == "aaa"
    assert default_collection(None, ["aaa"], workspace) == "aaa"
    assert default_collection(run, [], workspace) == ""


def test_prepare_retrieves_with_the_collections_saved_settings(workspace):
    from langchain_core.documents import Document

    from workbench.answers.answer import EndpointAnswerer
    from workbench.kb import ingest
    from workbench.kb.retrieval import RetrievalConfig, save_retrieval

    ingest.ingest_documents([Document("현금으로 결제가 가능합니다.", metadata={"source": "pay.txt"})], "faq", workspace=workspace)
    save_retrieval("faq", {"mode": "dense", "scale": "collection"}, workspace)
    endpoint = EndpointAnswerer("http://127.0.0.1:9/v1", "m")
    setup = answer.prepare(["api_rag"], workspace, collection="faq", endpoint=endpoint)
    assert (setup.retrieval.mode, setup.retrieval.scale, setup.retrieval.k) == ("dense", "collection", answer.DEFAULT_K)
    given = RetrievalConfig(mode="hybrid", k=2)  # what a caller passes is used as given
    assert answer.prepare(["api_rag"], workspace, collection="faq", endpoint=endpoint, retrieval=given).retrieval is given


# --- readers that answer and stop (#21) -----------------------------------------------------------------------------

QUESTIONS = ("아이스크림은 어디에 있나요?", "영업시간이 어떻게 되나요?", "Where is the ice cream?", "Can I pay by card?")


def _shop(ws) -> None:
    from workbench.kb.ingest import ingest_paths

    shop = ROOT / "examples" / "shop"
    ingest_paths([shop / "store_map_ko.md", shop / "store_guide_en.md", shop / "hours_ko.txt"], "shop", workspace=ws)


def _ends(setup, sources, settings) -> dict[str, list]:
    items = []
    for q in QUESTIONS:
        chunks, _ = answer.retrieve_context(setup, q)
        items.append(answer.Item(q, "", chunks))
    return {s: answer.answer_block(items, s, setup, settings, batch_size=4) for s in sources}


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "examples" / "shop").is_dir(), reason="the sample shop is not there")
def test_the_pretrained_gemma_answers_and_stops_in_both_languages(workspace, gemma_dir):
    """The packaged Gemma 3 270M is pretrained: base and base + RAG are asked with examples, end on their own before
    max_new_tokens, in Korean and English, and neither recites an instruction nor copies a context header."""
    from workbench.answers.inference import GenerationConfig
    from workbench.compare.metrics import answer_flags
    from workbench.models.prompts import instruction_sentences

    _shop(workspace)
    setup = answer.prepare(["base", "rag"], workspace, base_model="gemma3-270m", collection="shop")
    assert (setup.base_template, setup.generator.instruct) == ("completion", False)
    got = _ends(setup, ["base", "rag"], GenerationConfig(max_new_tokens=64))
    for source, results in got.items():
        for q, r in zip(QUESTIONS, results):
            assert r.stopped != "max_new_tokens" and r.completion_tokens < 64, (source, q, r.text)
            assert r.text and not any(answer_flags(r.text, instruction_sentences()).values()), (source, q, r.text)
            assert r.prompt.startswith("<bos>") and r.prompt.endswith(("답변:", "Answer:"))
            assert ("문서:" in r.prompt or "Document:" in r.prompt) == (source == "rag")


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory, smollm2_dir):
    """A real SmolLM2 run on the sample shop's 60-row dataset (Korean and English), trained long enough to learn to
    end its answers (40 steps, 'alpaca'), in its own workspace with the shop's documents as collection 'shop'."""
    import shutil

    from workbench.common.config import Workspace
    from workbench.dataset.alpaca import DatasetConfig, SplitConfig, import_dataset, split_dataset
    from workbench.training.finetune import TrainConfig
    from workbench.training.runs import start_training, wait_run

    ws = Workspace(tmp_path_factory.mktemp("shop-run") / "ws").ensure()
    ws.models.rmdir()
    ws.models.symlink_to(smollm2_dir.parent, target_is_directory=True)
    src = ws.root / "shop_qa_small.csv"
    shutil.copy(ROOT / "examples" / "alpaca" / "shop_qa_small.csv", src)
    import_dataset(src, DatasetConfig(name="shop", tokenizer=""), workspace=ws)
    split_dataset("shop", SplitConfig(test_size=0.1, val_size=0.1), workspace=ws)
    config = TrainConfig(dataset="shop", backend="transformers", prompt_template="alpaca", max_steps=40, eval_steps=40,
                         save_steps=40, per_device_train_batch_size=4, learning_rate=1e-3, warmup_steps=0)
    run = wait_run(start_training(config, ws).id, ws, timeout=900)
    assert run.state == "completed" and run.adapter_dir is not None, run.status
    _shop(ws)
    return ws, run


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "examples" / "shop").is_dir(), reason="the sample shop is not there")
def test_every_source_of_a_run_ends_before_max_new_tokens_in_both_languages(shop_run):
    """SmolLM2 is instruction-tuned: its own answers go through its chat template; the run's adapter through the
    run's 'alpaca' template. Base, base + RAG and the fine-tuned answers end before max_new_tokens in Korean and
    English, every one; fine-tuned + RAG at least half of the time: this 40-step run never saw a context in training,
    and on one it may still ramble through a list (two of four ran to 96 tokens on CI's machine and on ours)."""
    from workbench.answers.inference import GenerationConfig

    ws, run = shop_run
    setup = answer.prepare(list(answer.DEFAULT_SOURCES), ws, run=run, collection="shop")
    assert (setup.base_template, setup.template) == ("chat", "alpaca")
    got = _ends(setup, list(answer.DEFAULT_SOURCES), GenerationConfig(max_new_tokens=96))
    for source, results in got.items():
        ran_on = [(q, r.text) for q, r in zip(QUESTIONS, results) if r.stopped == "max_new_tokens"]
        assert len(ran_on) <= (len(QUESTIONS) // 2 if source == "ft_rag" else 0), (source, ran_on)
    assert all("<|im_start|>" in r.prompt for r in got["base"] + got["rag"])
    assert all("### Instruction:" in r.prompt for r in got["ft"] + got["ft_rag"])


@pytest.mark.slow
@pytest.mark.skipif(not (ROOT / "examples" / "shop").is_dir(), reason="the sample shop is not there")
def test_the_four_columns_are_one_batch_where_batching_pays_and_the_same_answers_either_way(shop_run, monkeypatch):
    """On this CPU the columns are generated one after another (a padded batch of four cost more here); on a GPU they
    are one mixed-adapter batch, read in turn. Forcing the GPU's choice runs the real batched path here: the same
    answers, all four columns growing together."""
    from workbench.answers.inference import GenerationConfig, Generator

    ws, run = shop_run
    sources = list(answer.DEFAULT_SOURCES)
    setup = answer.prepare(sources, ws, run=run, collection="shop")
    settings = GenerationConfig(max_new_tokens=32)
    assert setup.generator.batches_columns is False
    apart = answer.ask("Where is the ice cream?", sources, setup, settings)
    seen = [s for s, _ in apart.pieces()]
    assert not apart.together and seen == sorted(seen, key=sources.index)  # column by column
    monkeypatch.setattr(Generator, "batches_columns", property(lambda self: True))
    together = answer.ask("Where is the ice cream?", sources, setup, settings)
    seen = [s for s, _ in together.pieces()]
    assert together.together and seen[:len(sources)] == sources  # in turn: every column's first piece, then the next
    for s in sources:
        a, b = apart.streams[s].result, together.streams[s].result
        assert (b.text, b.stopped, b.batch_size) == (a.text, a.stopped, 4) and a.batch_size == 1
