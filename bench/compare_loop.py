"""The sample-shop proof of issue 6, end to end through the workbench's CLI, timed step by step.

    python -m bench.compare_loop [--base-model smollm2-135m] [--limit 0] [--speedup-rows 16] [--work /tmp/compare-loop]
    python -m bench.compare_loop --base-model gemma3-270m --speedup-rows 8

In a fresh WORKBENCH_HOME, each step a `python -m workbench ...` process, as a user would type them:

0. prepare: convert the packaged GGUF model into the workspace (once per install; reported, not in the loop total);
   the workbench's own conversion, Gemma's tokenizer included (`workbench.models.gguf_tokenizer`); its marker is recorded
1. ingest:  `ingest examples/shop --collection shop`
2. import:  `dataset import examples/alpaca/shop_qa.csv --name shop`
3. split:   `dataset split shop` (9:1, then 8:2: 359 train / 90 validation / 50 test)
4. train:   `train --dataset shop --base-model M --follow --json` (every CPU default)
5. evaluate: `evaluate --run ID --dataset shop --collection shop --max-new-tokens 48 --json --out DIR`
   (base, fine-tuned, base + RAG, fine-tuned + RAG on the test split; k, batch size: the defaults)

With `--context raft` (issue #16, RAG-aware fine-tuning) the same invocation then trains a second run on the same split
with `--set context=raft --set context_collection=shop --set context_k=K --set context_max_chars=C` and evaluates it
the same way: both runs' four-way tables, the raft run's training-time and token ratio against the plain run, and
paired per-row differences of char F1 with 95 % bootstrap intervals (raft ft_rag against plain ft, plain rag, raft ft
...). `--freshness` then asks the knowledge-freshness demo question (examples/freshness) of both runs with the four
sources, before and after the fact changes and is re-ingested (then restores it).

    python -m bench.compare_loop --base-model gemma3-270m --context raft --context-k 3 --context-max-chars 300 \
        --freshness --speedup-rows 0 --tag raft

`--control-short-context` (with the same `--context`, `--work` and `--base-model`) then runs no loop: on the workspace
and evaluations that invocation left, it asks base + RAG and the plain run's fine-tuned + RAG with the context run's
own prompt (its k and chunk length over the same retrieved chunks) and gives the context run's fine-tuned + RAG
against them, paired: is the gain the training or only the shorter prompt? (compare_loop_<model>_<tag>_control_<date>.json)

    python -m bench.compare_loop --base-model gemma3-270m --context raft --work /tmp/wf-compare-loop --tag raft \
        --control-short-context

Then, outside the loop total, the speed-up of batched generation, in this one process with one loaded model: the
first `--speedup-rows` test rows with the four sources, one answer at a time (`batch_size=1`) and batched (the
default), same settings; the answers of the two are compared.

Per step: wall time, CPU seconds of the step's processes (`getrusage(RUSAGE_CHILDREN)` around it; training runs in
a detached child, whose own CPU seconds the workbench records in status.json and which are added), load average at
start and end. The machine is shared: CPU seconds are the load-independent figure. Waits for /tmp/bench.lock
(an `flock`: another benchmark or CI on the same cores) and holds it while running. Writes
bench/results/compare_loop_<model>_<date>.json and prints the four-way table as Markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: spinning OpenMP threads crawl on a shared CPU
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from workbench.models.registry import cpu_name  # noqa: E402  (after the path and environment above)

LOCK = Path("/tmp/bench.lock")
TARGET_S = 15 * 60
SOURCES = ("base", "ft", "rag", "ft_rag")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def step(name: str, args: list[str], env: dict[str, str], steps: list[dict[str, Any]], log_dir: Path) -> str:
    """Run `python -m workbench ARGS` as one timed step; returns its stdout."""
    log(f"{name}: python -m workbench {' '.join(args)}")
    rec: dict[str, Any] = {"step": name, "command": "python -m workbench " + " ".join(args), "load_start": load()}
    cpu0, t0 = children_cpu(), time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    rec.update(wall_s=round(time.perf_counter() - t0, 1), cpu_s=round(children_cpu() - cpu0, 1), load_end=load())
    (log_dir / f"{name}.log").write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr, encoding="utf-8")
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")
    steps.append(rec)
    log(f"{name}: {rec['wall_s']} s wall, {rec['cpu_s']} CPU-s, load {rec['load_start'][0]} -> {rec['load_end'][0]}")
    return proc.stdout


def take_lock(label: str, expected_s: float) -> tuple[Any, float]:
    """Wait until no other benchmark holds /tmp/bench.lock, then hold it: an `flock` on the file, the same lock as
    `flock /tmp/bench.lock CMD` takes (CI and the other benchmarks). Returns (the open file, seconds waited)."""
    import fcntl

    fh = open(LOCK, "a+", encoding="utf-8")
    t0 = time.perf_counter()
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log(f"waiting for {LOCK} (held by another benchmark or CI)")
        fcntl.flock(fh, fcntl.LOCK_EX)
    end = dt.datetime.now() + dt.timedelta(seconds=expected_s)
    fh.seek(0)
    fh.truncate()
    fh.write(f"{label}, until ~{end:%H:%M}\n")  # for people looking; the flock is the lock
    fh.flush()
    return fh, round(time.perf_counter() - t0, 1)


def release_lock(fh: Any) -> None:
    import fcntl

    fh.seek(0)
    fh.truncate()
    fcntl.flock(fh, fcntl.LOCK_UN)
    fh.close()


def four_way_table(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for s, v in summary["per_source"].items():
        m = v["metrics"]
        rows.append({"source": s, **{k: m[k] for k in ("exact_match", "char_f1", "rouge_l", "embedding_similarity",
                                                       "retrieval_hit") if k in m},
                     "latency_s": v["latency_s"], "prompt_tokens": v["prompt_tokens"],
                     "completion_tokens": v["completion_tokens"], "hit_max_tokens": v["hit_max_tokens"]})
    return rows


def markdown(table: list[dict[str, Any]]) -> str:
    from workbench.answers.answer import SOURCE_LABELS

    def ci(m: dict[str, Any] | None) -> str:
        return "–" if not m or m.get("mean") is None else f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"

    lines = ["| source | char F1 | ROUGE-L | embedding sim. | EM | hit@k | latency / answer | prompt tokens |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in table:
        hit = r.get("retrieval_hit")
        lines.append(f"| {SOURCE_LABELS[r['source']][0]} | {ci(r.get('char_f1'))} | {ci(r.get('rouge_l'))} | "
                     f"{ci(r.get('embedding_similarity'))} | {r['exact_match']['mean']:.3f} | "
                     f"{'–' if not hit else format(hit['mean'], '.2f')} | {r['latency_s']:.2f} s | {r['prompt_tokens']:.0f} |")
    return "\n".join(lines)


def measure_speedup(ws: Any, run_id: str, n_rows: int, max_new_tokens: int, out: Path) -> dict[str, Any]:
    """Evaluate the first `n_rows` test rows with the four sources one at a time, then batched, with one loaded model,
    in this process (glibc tuned as the `evaluate` command tunes it)."""
    import dataclasses

    from workbench.answers.inference import load_generator_for_run
    from workbench.cli.infer import keep_freed_memory
    from workbench.compare.evaluation import EvalConfig, load_results, run_evaluation
    from workbench.dataset.alpaca import load_split
    from workbench.training.runs import get_run

    keep_freed_memory()
    gen = load_generator_for_run(get_run(run_id, ws), ws)
    rows = load_split("shop", "test", ws)[:n_rows]
    default_batch = next(f.default for f in dataclasses.fields(EvalConfig) if f.name == "batch_size")
    base = dict(dataset="shop", run_id=run_id, collection="shop", sources=SOURCES, embedding_model="")
    result: dict[str, Any] = {"rows": len(rows), "sources": list(SOURCES), "max_new_tokens": max_new_tokens,
                              "note": "generation + retrieval; no embedding score (the same work in each)"}
    answers = {}
    for label, batch_size in (("one_at_a_time", 1), ("batched", default_batch)):
        log(f"speed-up: {label} (batch_size {batch_size}), {len(rows)} rows x {len(SOURCES)} sources")
        cfg = EvalConfig(**base, batch_size=batch_size, generation={"max_new_tokens": max_new_tokens})
        lo, cpu0, t0 = load(), self_cpu(), time.perf_counter()
        summary = run_evaluation(cfg, out / label, ws, generator=gen, rows=rows)
        result[label] = {"batch_size": batch_size, "wall_s": round(time.perf_counter() - t0, 1),
                         "cpu_s": round(self_cpu() - cpu0, 1), "load_start": lo, "load_end": load(),
                         "per_source_latency_s": {s: v["latency_s"] for s, v in summary["per_source"].items()},
                         "char_f1": {s: v["metrics"]["char_f1"]["mean"] for s, v in summary["per_source"].items()}}
        answers[label] = {(r["row"], r["source"]): r for r in load_results(out / label)}
        log(f"speed-up: {label}: {result[label]['wall_s']} s wall, {result[label]['cpu_s']} CPU-s")
    one = answers["one_at_a_time"]
    for label in ("batched",):
        other = answers[label]
        result[label]["identical_answers"] = {s: sum(one[k]["answer"] == other[k]["answer"] for k in one if k[1] == s)
                                              for s in SOURCES}
        result[label]["differing"] = [{"row": k[0], "source": k[1], "one_at_a_time": one[k]["answer"], label: other[k]["answer"],
                                       "char_f1": [one[k]["char_f1"], other[k]["char_f1"]]}
                                      for k in sorted(one) if one[k]["answer"] != other[k]["answer"]]
        result[label]["speedup_wall"] = round(result["one_at_a_time"]["wall_s"] / result[label]["wall_s"], 2)
        result[label]["speedup_cpu"] = round(result["one_at_a_time"]["cpu_s"] / result[label]["cpu_s"], 2)
    return result


def train_and_evaluate(label: str, overrides: list[str], args: argparse.Namespace, env: dict[str, str],
                       steps: list[dict[str, Any]], logs: Path, work: Path) -> dict[str, Any]:
    """One training run (`train ... --follow --json`) and its four-way evaluation; step names get `label` unless it
    is the plain run."""
    suffix = "" if label == "plain" else f"-{label}"
    out = step(f"train{suffix}", ["train", "--dataset", "shop", "--base-model", args.base_model, *overrides, "--follow",
                                  "--json"], env, steps, logs)
    final = json.loads(out.strip().splitlines()[-1])
    run_id = final["id"]
    if final.get("state") != "completed":
        raise SystemExit(f"training {run_id} ended {final.get('state')}: {final.get('error')}")
    train = steps[-1]
    train["cli_cpu_s"] = train["cpu_s"]
    train["trainer_cpu_s"] = final.get("cpu_seconds")
    train["cpu_s"] = round(train["cli_cpu_s"] + (final.get("cpu_seconds") or 0.0), 1)
    result: dict[str, Any] = {"overrides": overrides}
    result["train"] = {k: final.get(k) for k in ("id", "state", "step", "max_steps", "train_seconds", "cpu_seconds",
                                                 "train_loss", "best_metric", "tokens_per_s", "num_input_tokens_seen",
                                                 "train_rows", "context", "context_tokens")}
    result["train"]["resolved"] = (final.get("resolved") or {}).get("notes")
    eval_dir = work / f"eval{suffix}"
    ev_args = ["evaluate", "--run", run_id, "--dataset", "shop", "--collection", "shop",
               "--max-new-tokens", str(args.max_new_tokens), "--json", "--out", str(eval_dir)]
    if args.limit:
        ev_args[ev_args.index("--json"):ev_args.index("--json")] = ["--limit", str(args.limit)]
    step(f"evaluate{suffix}", ev_args, env, steps, logs)
    summary = json.loads((eval_dir / "summary.json").read_text(encoding="utf-8"))
    result["evaluation"] = {
        "rows": summary["rows"], "seconds": summary["seconds"], "template": summary["template"],
        "retrieval": summary.get("retrieval"), "ft_rag_context": summary.get("ft_rag_context"),
        "batch_size": summary["config"]["batch_size"], "generation": summary["config"]["generation"],
        "table": four_way_table(summary), "wins": summary["wins"], "cost": summary["cost"], "warnings": summary["warnings"],
    }
    result["eval_dir"] = str(eval_dir)
    shutil.copy(eval_dir / "report.md", logs / f"report{suffix}.md")
    return result


PAIRS = (("raft", "ft_rag", "plain", "ft"), ("raft", "ft_rag", "plain", "rag"), ("raft", "ft_rag", "plain", "ft_rag"),
         ("raft", "ft_rag", "raft", "ft"), ("raft", "ft_rag", "raft", "rag"), ("raft", "ft", "plain", "ft"),
         ("plain", "ft_rag", "plain", "ft"), ("raft", "rag", "plain", "rag"))


def paired_differences(runs: dict[str, dict[str, Any]], label: str) -> dict[str, Any]:
    """Per-row differences of char F1 between two (run, source) pairs, with 95 % bootstrap intervals: the rows are the
    same test rows, so the pairing removes the rows' own difficulty from the comparison."""
    from workbench.compare.evaluation import load_results
    from workbench.compare.metrics import mean_ci

    scores = {name: {(r["row"], r["source"]): r["char_f1"] for r in load_results(run["eval_dir"])}
              for name, run in runs.items()}
    out = {}
    for a_run, a_src, b_run, b_src in PAIRS:
        a_run, b_run = (label if x == "raft" else x for x in (a_run, b_run))
        if a_run not in scores or b_run not in scores:
            continue
        a, b = scores[a_run], scores[b_run]
        rows = sorted(r for r, s in a if s == a_src and (r, b_src) in b)
        diffs = [a[(r, a_src)] - b[(r, b_src)] for r in rows]
        out[f"{a_run}.{a_src} - {b_run}.{b_src}"] = {**mean_ci(diffs, 0.95, 2000, 0),
                                                      "better": sum(d > 0 for d in diffs), "worse": sum(d < 0 for d in diffs)}
    return out


def measure_freshness(ws: Any, runs: dict[str, dict[str, Any]], max_new_tokens: int) -> dict[str, Any]:
    """The freshness demo with each run: its question (ko, en) to the four sources before the fact changes, after the
    changed documents are re-ingested, and the originals restored at the end. An answer "follows" a fact when it
    names its aisle number (5 new, 3 old)."""
    from workbench.answers.answer import ask, prepare
    from workbench.answers.inference import GenerationConfig, load_generator_for_run
    from workbench.compare.freshness import change_facts, load_demo, restore_facts
    from workbench.training.runs import get_run

    demo = load_demo()
    settings = GenerationConfig(max_new_tokens=max_new_tokens)
    gens = {name: (get_run(r["train"]["id"], ws), None) for name, r in runs.items()}

    def ask_all(state: str, out: dict[str, Any]) -> None:
        for name, (run, _) in gens.items():
            gen = load_generator_for_run(run, ws)
            for lang, q in demo.questions.items():
                setup = prepare(list(SOURCES), ws, run=run, collection="shop", lang="ko", generator=gen)
                got = ask(q, list(SOURCES), setup, settings).results()
                for source, res in got.items():
                    text = res.text
                    out.setdefault(name, {}).setdefault(lang, {}).setdefault(source, {})[state] = {
                        "answer": text, "new_fact": "5" in text, "old_fact": "3" in text}
            del gen

    result: dict[str, Any] = {"questions": demo.questions, "edits": len(demo.edits), "answers": {}}
    ask_all("before", result["answers"])
    changed = change_facts("shop", demo.edits, demo.source_dir, ws)
    result["changed"] = {k: changed.get(k) for k in ("files", "replacements", "added", "removed")}
    try:
        ask_all("after", result["answers"])
    finally:
        restore_facts("shop", changed["files"], demo.source_dir, ws)
    return result


def control_short_context(work: Path, label: str) -> dict[str, Any]:
    """The short-context control of a finished `--context` invocation, on its workspace (`work`/ws) and evaluations
    (`work`/eval, `work`/eval-LABEL, whose config.json name the two runs): the same test rows, the chunks retrieved as
    the context run's evaluation retrieved them, the context run's prompt rule (`prompts.context_prompt` with its k,
    chunk length and language) given to base + RAG and to the PLAIN run's fine-tuned + RAG, and the context run's own
    fine-tuned + RAG answered again beside them (a check that this path reproduces the evaluation). Same generation
    settings, batch size and batches (rows in the evaluation's order: longest recorded prompt first), char F1 by
    `workbench.compare.metrics`, paired differences as `paired_differences` gives them. Whatever the context run gains over a
    control is the training, not the shorter prompt."""
    from workbench.answers.answer import Item, answer_block, prepare, prompt_for, retrieve_context
    from workbench.answers.inference import GenerationConfig, load_generator_for_run
    from workbench.cli.infer import keep_freed_memory
    from workbench.common.config import Workspace
    from workbench.compare.evaluation import load_results, load_summary
    from workbench.compare.metrics import mean_ci, score_answer
    from workbench.dataset.alpaca import load_split
    from workbench.kb.retrieval import RetrievalConfig
    from workbench.training.runs import get_run

    keep_freed_memory()
    ws = Workspace.default()
    dirs = {"plain": work / "eval", label: work / f"eval-{label}"}
    configs = {name: json.loads((d / "config.json").read_text(encoding="utf-8")) for name, d in dirs.items()}
    summary = load_summary(dirs[label])
    context = summary and summary.get("ft_rag_context")
    if not context:
        raise SystemExit(f"{dirs[label]}: its fine-tuned + RAG answers used no context prompt (summary ft_rag_context).")
    cfg = configs[label]
    recorded = {name: {(r["row"], r["source"]): r for r in load_results(d)} for name, d in dirs.items()}
    rows = load_split(cfg["dataset"], cfg["split"], ws)
    rows = rows[: cfg["limit"]] if cfg["limit"] else rows
    for i, row in enumerate(rows, 1):
        for name in dirs:
            if recorded[name][(i, "ft_rag")]["question"] != str(row.get("instruction") or ""):
                raise SystemExit(f"row {i}: the test split is not the one {dirs[name]} answered")
    runs = {name: get_run(c["run_id"], ws) for name, c in configs.items()}
    retrieval = RetrievalConfig.from_dict(summary["retrieval"])
    settings = GenerationConfig.from_dict(dict(cfg["generation"]))
    size = int(cfg["batch_size"])
    common = dict(collection=cfg["collection"], retrieval=retrieval, rag_template=cfg["rag_template"], lang=cfg["lang"],
                  template=cfg["prompt_template"])
    gen = load_generator_for_run(runs["plain"], ws)
    control = prepare(["rag", "ft_rag"], ws, run=runs["plain"], generator=gen, **common)
    control.context, control.context_sources = dict(context), ("rag", "ft_rag")  # the context run's prompt rule
    control.base_template = control.template  # base + RAG asked exactly as the runs' fine-tuned + RAG, template too
    own = prepare(["ft_rag"], ws, run=runs[label], generator=gen, **common)
    assert own.context == context, (own.context, context)
    answerers = {"base_rag_short": (control, "rag"), "plain_ft_rag_short": (control, "ft_rag"),
                 f"{label}_ft_rag_again": (own, "ft_rag")}

    items, checks = [], {"chunks_as_recorded": 0, "prompt_as_recorded": 0, "control_prompts_identical": 0}
    for i, row in enumerate(rows, 1):
        question, row_input = str(row.get("instruction") or ""), str(row.get("input") or "")
        chunks, _ = retrieve_context(control, question, row_input)
        rec = recorded[label][(i, "ft_rag")]
        got = [(Path(str(c.metadata.get("source", ""))).name, c.metadata.get("chunk_id"), float(c.score)) for c in chunks]
        want = [(r["source"], r["chunk_id"], r["score"]) for r in json.loads(rec["retrieved"])]
        same = [g[:2] for g in got] == [w[:2] for w in want]  # the same chunks in the same order; the scores move
        checks["chunks_as_recorded"] += same  # in the 4th decimal between processes (the query embedding's rounding)
        if same:
            checks["score_max_diff"] = round(max([checks.get("score_max_diff", 0.0)] +
                                                 [abs(g[2] - w[2]) for g, w in zip(got, want)]), 4)
        prompts = {name: prompt_for(setup, source, question, row_input, chunks)[2] for name, (setup, source) in answerers.items()}
        checks["prompt_as_recorded"] += prompts[f"{label}_ft_rag_again"] == rec["prompt"]
        checks["control_prompts_identical"] += len(set(prompts.values())) == 1
        longest = max((recorded[label][(i, s)]["prompt"] for s in SOURCES if (i, s) in recorded[label]), key=len)
        items.append({"i": i, "item": Item(question, row_input, chunks), "reference": str(row.get("output") or ""),
                      "order": len(gen.tokenizer(longest, add_special_tokens=False)["input_ids"])})
    log(f"control: {len(items)} rows; chunks as recorded {checks['chunks_as_recorded']}, prompt as recorded "
        f"{checks['prompt_as_recorded']}, the three prompts identical {checks['control_prompts_identical']}")
    ordered = sorted(items, key=lambda e: e["order"], reverse=True)  # as the evaluation ordered them (its batches)
    answers: dict[str, dict[int, Any]] = {name: {} for name in answerers}
    lo, cpu0, t0 = load(), self_cpu(), time.perf_counter()
    for start in range(0, len(ordered), size):
        block = ordered[start:start + size]
        for name, (setup, source) in answerers.items():
            res = answer_block([e["item"] for e in block], source, setup, settings, batch_size=size)
            answers[name].update({e["i"]: r for e, r in zip(block, res)})
        log(f"control: rows {start + 1}-{start + len(block)} of {len(ordered)}")
    cost = {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(self_cpu() - cpu0, 1), "load_start": lo,
            "load_end": load(), "answers": len(items) * len(answerers)}

    ref = {e["i"]: e["reference"] for e in items}
    scores = {name: {i: score_answer(r.text, ref[i])["char_f1"] for i, r in got.items()} for name, got in answers.items()}
    for name in dirs:
        for src in ("rag", "ft_rag", "ft"):
            scores[f"{name}.{src}"] = {i: recorded[name][(i, src)]["char_f1"] for i in ref}
    again = answers[f"{label}_ft_rag_again"]
    checks["answers_as_recorded"] = sum(again[i].text == recorded[label][(i, "ft_rag")]["answer"] for i in ref)
    means = {name: mean_ci([v[i] for i in sorted(ref)], cfg["confidence"], cfg["bootstrap"], cfg["seed"])
             for name, v in scores.items()}
    pairs = [(f"{label}.ft_rag", "base_rag_short"), (f"{label}.ft_rag", "plain_ft_rag_short"),
             (f"{label}_ft_rag_again", "base_rag_short"), (f"{label}_ft_rag_again", "plain_ft_rag_short"),
             ("base_rag_short", "plain.rag"), ("plain_ft_rag_short", "plain.ft_rag"), ("plain_ft_rag_short", "plain.ft")]
    paired = {}
    for a, b in pairs:
        diffs = [scores[a][i] - scores[b][i] for i in sorted(ref)]
        paired[f"{a} - {b}"] = {**mean_ci(diffs, 0.95, 2000, 0), "better": sum(d > 0 for d in diffs),
                                "worse": sum(d < 0 for d in diffs)}
    return {"runs": {name: c["run_id"] for name, c in configs.items()}, "context_prompt": context,
            "retrieval": summary["retrieval"], "generation": cfg["generation"], "batch_size": size,
            "template": control.template, "rows": len(items), "checks": checks, "cost": cost, "char_f1": means,
            "paired_char_f1": paired,
            "answers": {name: [{"row": i, "answer": r.text, "char_f1": scores[name][i], "stopped": r.stopped}
                               for i, r in sorted(got.items())] for name, got in answers.items()}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-model", default="smollm2-135m", help="registry key of the base model")
    ap.add_argument("--limit", type=int, default=0, help="evaluate only the first N test rows (0: all 50)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--speedup-rows", type=int, default=16, help="rows for one-at-a-time vs batched (0: skip)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/compare-loop"))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    ap.add_argument("--tag", default="", help="in the results file's name: compare_loop_<model>_<tag>_<date>.json")
    ap.add_argument("--no-lock", action="store_true", help=f"do not wait for / hold {LOCK}")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="TrainConfig overrides passed to `train --set` (for a quick dry run; the proof uses none)")
    ap.add_argument("--context", choices=["none", "retrieved", "raft"], default="none",
                    help="after the plain run, train and evaluate a second run with this training context (issue #16)")
    ap.add_argument("--context-k", type=int, default=3, help="chunks per training prompt of the context run")
    ap.add_argument("--context-max-chars", type=int, default=300, help="characters kept per chunk (0: whole chunks)")
    ap.add_argument("--context-oracle-share", type=float, default=0.8, help="raft: rows with their oracle chunk (P)")
    ap.add_argument("--skip-plain", action="store_true", help="with --context: train only the context run")
    ap.add_argument("--freshness", action="store_true", help="then the knowledge-freshness demo with each run")
    ap.add_argument("--control-short-context", action="store_true",
                    help="instead of the loop: on the finished --context invocation under --work (its workspace and "
                         "evaluations kept), ask base + RAG and the plain run's fine-tuned + RAG with the context run's "
                         "prompt rule, and compare the context run's fine-tuned + RAG with them")
    args = ap.parse_args(argv)
    if args.control_short_context:
        return main_control(args, argv)

    work = args.work / args.base_model
    shutil.rmtree(work, ignore_errors=True)
    ws_dir = work / "ws"
    ws_dir.mkdir(parents=True)
    logs = work / "logs"
    logs.mkdir()
    env = dict(os.environ, WORKBENCH_HOME=str(ws_dir))
    os.environ["WORKBENCH_HOME"] = str(ws_dir)
    label = f"compare helper: bench/compare_loop.py {args.base_model}"
    lock, waited = (None, 0.0) if args.no_lock else take_lock(label, 45 * 60)
    import torch

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "command": " ".join([Path(sys.executable).name, "-m", "bench.compare_loop",
                                                                         *(argv if argv is not None else sys.argv[1:])]),
        "base_model": args.base_model, "machine": {"cpus": os.cpu_count(), "cpu": cpu_name(), "python": platform.python_version(),
                                                  "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                                                  "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
        "waited_for_lock_s": waited, "load_start": load(), "steps": [],
    }
    steps: list[dict[str, Any]] = result["steps"]
    try:
        step("prepare", ["ask", "ok", "--base-model", args.base_model, "--max-new-tokens", "1", "--json"], env, steps, logs)
        steps[-1]["note"] = "converts the packaged GGUF into the workspace and answers one token: once per install"
        marker = ws_dir / "models" / args.base_model / "workbench-model.json"
        if marker.is_file():
            result["model_marker"] = json.loads(marker.read_text(encoding="utf-8"))
        step("ingest", ["ingest", "examples/shop", "--collection", "shop", "--quiet"], env, steps, logs)
        step("import", ["dataset", "import", "examples/alpaca/shop_qa.csv", "--name", "shop"], env, steps, logs)
        split = json.loads(step("split", ["dataset", "split", "shop"], env, steps, logs))
        result["split"] = split.get("sizes")
        overrides = [a for kv in args.set for a in ("--set", kv)]
        runs: dict[str, dict[str, Any]] = {}
        if not (args.skip_plain and args.context != "none"):
            runs["plain"] = train_and_evaluate("plain", overrides, args, env, steps, logs, work)
        if args.context != "none":
            ctx = [f"context={args.context}", "context_collection=shop", f"context_k={args.context_k}",
                   f"context_max_chars={args.context_max_chars}", f"context_oracle_share={args.context_oracle_share}"]
            runs[args.context] = train_and_evaluate(args.context, overrides + [a for kv in ctx for a in ("--set", kv)],
                                                    args, env, steps, logs, work)
        first = next(iter(runs.values()))
        result["train"], result["evaluation"] = first["train"], first["evaluation"]  # the plain run, as before
        result["runs"] = runs
        if len(runs) > 1:
            plain, ctx_run = runs["plain"]["train"], runs[args.context]["train"]
            result["context_cost"] = {
                "train_seconds": [plain["train_seconds"], ctx_run["train_seconds"]],
                "train_time_ratio": round(ctx_run["train_seconds"] / plain["train_seconds"], 2),
                "cpu_seconds_ratio": round((ctx_run["cpu_seconds"] or 0) / (plain["cpu_seconds"] or 1), 2),
                "input_tokens_ratio": round((ctx_run["num_input_tokens_seen"] or 0) / (plain["num_input_tokens_seen"] or 1), 2),
                "context_tokens": ctx_run.get("context_tokens"), "context_build_s": (ctx_run.get("context") or {}).get("seconds")}
        if runs:
            result["paired_char_f1"] = paired_differences(runs, args.context)
        loop = [s for s in steps if s["step"] != "prepare"]
        result["loop"] = {"steps": [s["step"] for s in loop], "wall_s": round(sum(s["wall_s"] for s in loop), 1),
                          "cpu_s": round(sum(s["cpu_s"] for s in loop), 1),
                          "wall_s_with_prepare": round(sum(s["wall_s"] for s in steps), 1), "target_s": TARGET_S}
        result["loop"]["within_target"] = result["loop"]["wall_s"] <= TARGET_S
        result["load_end_of_loop"] = load()
        log(f"loop: {result['loop']['wall_s']} s wall, {result['loop']['cpu_s']} CPU-s "
            f"({'within' if result['loop']['within_target'] else 'over'} {TARGET_S} s)")
        from workbench.common.config import Workspace

        if args.freshness:
            log("freshness: the demo question before and after the fact changes")
            t0 = time.perf_counter()
            try:
                result["freshness"] = measure_freshness(Workspace.default(), runs, args.max_new_tokens)
            except Exception as exc:  # the runs' figures above are kept; the demo's failure is recorded
                result["freshness"] = {"error": f"{type(exc).__name__}: {exc}"}
            result["freshness"]["wall_s"] = round(time.perf_counter() - t0, 1)
        if args.speedup_rows:
            result["speedup"] = measure_speedup(Workspace.default(), first["train"]["id"], args.speedup_rows,
                                                args.max_new_tokens, work / "speedup")
    finally:
        if lock is not None:
            release_lock(lock)
        result["load_end"] = load()
        args.out.mkdir(parents=True, exist_ok=True)
        tag = f"_{args.tag}" if args.tag else ""
        path = args.out / f"compare_loop_{args.base_model}{tag}_{time.strftime('%Y-%m-%d')}.json"
        if path.exists():  # an earlier run of the same day is kept
            path = path.with_name(f"{path.stem}_{time.strftime('%H%M')}.json")
        path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        log(f"wrote {path}")
    for name, run in result.get("runs", {}).items():
        print(f"\n{name}:\n" + markdown(run["evaluation"]["table"]))
    print(json.dumps({"context_cost": result.get("context_cost"), "paired_char_f1": result.get("paired_char_f1")}, indent=1))
    speed = result.get("speedup", {})
    print(json.dumps({"loop": result["loop"], "steps": [{k: s[k] for k in ("step", "wall_s", "cpu_s")} for s in steps],
                      "speedup": {k: {m: speed[k].get(m) for m in ("wall_s", "speedup_wall", "speedup_cpu", "identical_answers")}
                                  for k in ("one_at_a_time", "batched") if k in speed}}, indent=1))
    return 0


def main_control(args: argparse.Namespace, argv: list[str] | None) -> int:
    """`--control-short-context`: the control on an existing workspace; writes
    bench/results/compare_loop_<model>_<tag>_control_<date>.json and prints its figures."""
    if args.context == "none":
        raise SystemExit("--control-short-context needs --context (the context run's label: eval-<context> under --work)")
    work = args.work / args.base_model
    if not (work / "ws").is_dir():
        raise SystemExit(f"{work / 'ws'} is not there: run the --context invocation with this --work first")
    os.environ["WORKBENCH_HOME"] = str(work / "ws")
    lock, waited = (None, 0.0) if args.no_lock else take_lock(f"compare helper: control {args.base_model}", 15 * 60)
    import torch

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"), "command": " ".join([Path(sys.executable).name, "-m", "bench.compare_loop",
                                                                         *(argv if argv is not None else sys.argv[1:])]),
        "base_model": args.base_model, "work": str(work),
        "machine": {"cpus": os.cpu_count(), "cpu": cpu_name(), "python": platform.python_version(),
                    "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                    "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")},
        "waited_for_lock_s": waited}
    try:
        result["control"] = control_short_context(work, args.context)
    finally:
        if lock is not None:
            release_lock(lock)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = f"_{args.tag}" if args.tag else ""
    path = args.out / f"compare_loop_{args.base_model}{tag}_control_{time.strftime('%Y-%m-%d')}.json"
    if path.exists():
        path = path.with_name(f"{path.stem}_{time.strftime('%H%M')}.json")
    path.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {path}")
    c = result["control"]
    print(json.dumps({k: c[k] for k in ("runs", "context_prompt", "checks", "cost", "char_f1", "paired_char_f1")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
