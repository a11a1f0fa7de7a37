"""Readers that answer and stop (issue 21): how each base model is best asked, and where an answer should end.

    python -m bench.readers sweep [--models gemma3-270m smollm2-135m] [--rows 40] [--work /tmp/readers-bench]
    python -m bench.readers figures --baseline-checkout /tmp/wb-186bc51 [--work /tmp/readers-figures]

`figures`: on the sample shop (Korean and English rows, the packaged Gemma 3 270M) and on its English rows alone (the
packaged SmolLM2, English-only), each step one `python -m workbench ...` process as a user would type it: train a run
with every CPU default, then `evaluate` its test split with the four sources twice, with this checkout's prompts and
with today's (the same command run from `--baseline-checkout`, a checkout of the commit before issue 21, on the same
workspace and run), then `freshness` with the Gemma run. Per set and source, for both prompt rules: answers that end
on their own, loops, recited instructions, copied context headers (the report's readable-answer counts, computed the
same way for both), char F1 and ROUGE-L with 95% intervals, and the paired per-row difference new - today with its
interval; the new evaluation's verdict. Writes bench/results/readers_figures_<date>.json.

On rows of the sample shop's validation split (never the test split, which the figures are measured on), each model
answers as base and base + RAG with each prompt style it could get: its chat template, and the question -> answer
examples of `workbench.models.fewshot` (`completion`). Every answer is generated once, greedily, up to --max-new-tokens, with
no stop string and no loop cut (stop tokens only), and its token ids are kept. The end-of-answer rules are then
applied to those same generations (`workbench.models.stopping.AnswerCutter`), so every rule is compared on identical text:

- stop strings: none, a blank line or the next marker line of the example format ("\n질문:", "\nQuestion:", ...), or
  any line break;
- the loop cut of `GenerationConfig.loop_tokens`: n = 0 (off), 4, 6, 8, 12, 16, 24, 32.

`recompute --file bench/results/readers_figures_<date>.json` computes a finished figures file's tables again from the
evaluations it left, with this checkout's judgement of an answer.

Per model, style, source, language and rule: answers that end on their own (stop token or stop string), cut as a loop,
at max_new_tokens; char F1 and ROUGE-L against the reference; answers that still hold a repeated span, a sentence of
the prompt's instructions or a context header (`metrics.answer_flags`). And how often the loop cut would cut a
reference answer of the whole dataset (499 rows), per tokenizer and n: a false positive of the rule.

The workspace (--work) gets the sample shop ingested as `shop` and `examples/alpaca/shop_qa.csv` imported and split as
`shop` (the same split as bench/compare_loop.py) unless it holds them already. Writes
bench/results/readers_sweep_<date>.json and prints the tables as Markdown.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
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

LOOP_NS = (0, 4, 6, 8, 12, 16, 24, 32)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def prepare_workspace(work: Path) -> None:
    """The sample shop ingested as `shop` and its Alpaca rows split as `shop`, through the CLI, unless already there."""
    env = dict(os.environ, WORKBENCH_HOME=str(work))
    steps = []
    meta = work / "datasets" / "shop" / "meta.json"
    if not (meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("split")):
        steps += [["dataset", "import", str(ROOT / "examples/alpaca/shop_qa.csv"), "--name", "shop"], ["dataset", "split", "shop"]]
    if not (work / "vectorstore").is_dir():
        steps.insert(0, ["ingest", str(ROOT / "examples/shop"), "--collection", "shop"])
    for args in steps:
        log("python -m workbench " + " ".join(args))
        subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def rules() -> dict[str, tuple[str, ...]]:
    """The stop strings compared: none, a blank line or the next marker line of the example format, any line break."""
    markers = tuple(f"\n{m}:" for m in ("질문", "답변", "문서", "Question", "Answer", "Document"))
    return {"none": (), "blank line + markers": ("\n\n",) + markers, "line break + markers": ("\n",) + markers}


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    from workbench.answers import answer as an
    from workbench.answers.inference import GenerationConfig, load_generator
    from workbench.common.config import Workspace
    from workbench.compare.metrics import answer_flags, char_f1, rouge_l
    from workbench.dataset.alpaca import load_split
    from workbench.models.fewshot import language_of
    from workbench.models.prompts import instruction_sentences
    from workbench.models.stopping import STOPPED_ON_ITS_OWN, AnswerCutter, loop_start

    work = Path(args.work)
    prepare_workspace(work)
    os.environ["WORKBENCH_HOME"] = str(work)
    ws = Workspace.default()
    rows = load_split("shop", "validation", ws)[: args.rows]
    refs = [str(r["output"]) for r in load_split("shop", "train", ws) + load_split("shop", "validation", ws)
            + load_split("shop", "test", ws)]
    sentences = instruction_sentences()
    out: dict[str, Any] = {"rows": len(rows), "split": "validation", "max_new_tokens": args.max_new_tokens,
                           "languages": {lang: sum(language_of(r["instruction"]) == lang for r in rows) for lang in ("ko", "en")},
                           "generations": {}, "table": [], "reference_loop_cuts": {}}
    settings = GenerationConfig(max_new_tokens=args.max_new_tokens, loop_tokens=0)
    for model in args.models:
        gen = load_generator(model, ws)
        tok = gen.tokenizer
        ref_ids = [tok(r, add_special_tokens=False)["input_ids"] for r in refs]
        out["reference_loop_cuts"][model] = {n: sum(loop_start(ids, n) is not None for ids in ref_ids) for n in LOOP_NS if n}
        out["reference_loop_cuts"][model]["references"] = len(ref_ids)
        for style in ("completion", "chat"):
            setup = an.prepare(["base", "rag"], ws, base_model=model, template=style, collection="shop", generator=gen)
            items = []
            for r in rows:
                chunks, _ = an.retrieve_context(setup, r["instruction"], r["input"])
                items.append(an.Item(r["instruction"], r["input"], chunks))
            for source in ("base", "rag"):
                t0 = time.perf_counter()
                prompts = [an.prompt_for(setup, source, it.question, it.row_input, it.chunks)[2] for it in items]
                res = gen.generate_batch(prompts, settings=settings, template=style, strings=(),  # type: ignore[arg-type]
                                         batch_size=args.batch_size, keep_ids=True)
                seconds = time.perf_counter() - t0
                key = f"{model}/{style}/{source}"
                log(f"{key}: {len(res)} answers in {seconds:.0f} s")
                out["generations"][key] = {"seconds": round(seconds, 1), "prompt_tokens": [x.prompt_tokens for x in res],
                                           "ids": [x.ids for x in res]}
                stop_ids = gen.cutter(None, style).stop_ids  # type: ignore[arg-type]
                for rule, strings in rules().items():
                    for n in LOOP_NS:
                        cutter = AnswerCutter(tok, stop_ids, strings, n)
                        cuts = [cutter.cut(x.ids or []) for x in res]
                        for lang in ("all", "ko", "en"):
                            pick = [i for i, r in enumerate(rows) if lang == "all" or language_of(r["instruction"]) == lang]
                            if not pick:
                                continue
                            flags = [answer_flags(cuts[i].text, sentences) for i in pick]
                            k = len(pick)
                            out["table"].append({
                                "model": model, "style": style, "source": source, "lang": lang, "stop_strings": rule,
                                "loop_tokens": n, "answers": k,
                                "ended_on_own": round(sum(cuts[i].stopped in STOPPED_ON_ITS_OWN for i in pick) / k, 3),
                                "loop_cut": round(sum(cuts[i].stopped == "loop" for i in pick) / k, 3),
                                "max_new_tokens": round(sum(cuts[i].stopped == "max_new_tokens" for i in pick) / k, 3),
                                "repeated_span": round(sum(f["loop"] for f in flags) / k, 3),
                                "instruction": round(sum(f["instruction"] for f in flags) / k, 3),
                                "header": round(sum(f["header"] for f in flags) / k, 3),
                                "char_f1": round(sum(char_f1(cuts[i].text, rows[i]["output"]) for i in pick) / k, 4),
                                "rouge_l": round(sum(rouge_l(cuts[i].text, rows[i]["output"]) for i in pick) / k, 4),
                                "tokens": round(sum(cuts[i].tokens for i in pick) / k, 1),
                            })
        del gen
    return out


def cli(args: list[str], env: dict[str, str], cwd: Path = ROOT) -> tuple[str, float]:
    """`python -m workbench ARGS` from `cwd` (this checkout, or the baseline's); stdout and wall seconds."""
    log(f"{'' if cwd == ROOT else f'[{cwd}] '}python -m workbench {' '.join(args)}")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "workbench", *args], cwd=cwd, env={**env, "PYTHONPATH": str(cwd)},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {proc.stderr.strip()[-3000:]}")
    return proc.stdout, round(time.perf_counter() - t0, 1)


def english_rows(src: Path, dst: Path) -> int:
    """The rows of `src` whose instruction has no Hangul, as a CSV of the same columns."""
    import csv

    from workbench.models.fewshot import language_of

    with src.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if language_of(r["instruction"]) == "en"]
        fields = reader.fieldnames or []
    with dst.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    return len(rows)


def compare_prompts(new_dir: Path, old_dir: Path) -> dict[str, Any]:
    """Per source: readable-answer counts, char F1 and ROUGE-L with intervals, for the new and today's prompts on the
    same rows, and the paired difference new - today."""
    from workbench.compare.evaluation import load_results, load_summary
    from workbench.compare.metrics import mean_ci
    from workbench.compare.report import readability
    from workbench.compare.verdict import paired_difference

    new, old = load_results(new_dir), load_results(old_dir)
    out: dict[str, Any] = {}
    for source in load_summary(new_dir)["sources"]:
        per: dict[str, Any] = {}
        for name, results in (("new", new), ("today", old)):
            rs = [r for r in results if r["source"] == source]
            per[name] = {"readable": readability(rs), **{m: mean_ci([r[m] for r in rs], 0.95, 2000, 0)
                                                          for m in ("char_f1", "rouge_l")},
                         "completion_tokens": round(sum(r["completion_tokens"] for r in rs) / max(1, len(rs)), 1),
                         "latency_s": round(sum(r["latency_s"] for r in rs) / max(1, len(rs)), 3)}
        for m in ("char_f1", "rouge_l"):
            a = {r["row"]: r[m] for r in new if r["source"] == source}
            b = {r["row"]: r[m] for r in old if r["source"] == source}
            per[f"{m}_difference"] = paired_difference(a, b, n_boot=2000)
        out[source] = per
    return out


def figures(args: argparse.Namespace) -> dict[str, Any]:
    from workbench.compare.evaluation import load_summary
    from workbench.compare.report import verdict_lines

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    baseline = Path(args.baseline_checkout).resolve()
    env = dict(os.environ, WORKBENCH_HOME=str(work / "ws"))
    os.environ["WORKBENCH_HOME"] = env["WORKBENCH_HOME"]
    ws_root = work / "ws"
    out: dict[str, Any] = {"work": str(work), "baseline_checkout": str(baseline), "baseline_commit": subprocess.run(
        ["git", "-C", str(baseline), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(), "sets": {}}
    partial_path = ws_root / "figures-partial.json"
    partial = json.loads(partial_path.read_text(encoding="utf-8")) if partial_path.is_file() else {}
    out["sets"] = dict(partial.get("sets", {}))

    def save_partial(out: dict[str, Any], label: str, rec: dict[str, Any]) -> None:
        out["sets"][label] = rec
        partial_path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")

    if not partial:
        cli(["ingest", str(ROOT / "examples/shop"), "--collection", "shop"], env)
    english = work / "shop_qa_en.csv"
    out["english_rows"] = english_rows(ROOT / "examples/alpaca/shop_qa.csv", english)
    sets = {"shop-ko-en/gemma3-270m": ("shop", str(ROOT / "examples/alpaca/shop_qa.csv"), "gemma3-270m", []),
            "shop-en/smollm2-135m": ("shop_en", str(english), "smollm2-135m", ["--test-size", "0.2"])}
    for label, (name, csv_path, model, split_args) in sets.items():
        if args.only and args.only not in label:
            continue
        rec: dict[str, Any] = dict(partial.get("sets", {}).get(label) or {"dataset": name, "base_model": model})
        if "run" not in rec:  # a figures run that stopped part-way goes on where it stopped (same workspace)
            cli(["dataset", "import", csv_path, "--name", name, "--force"], env)
            cli(["dataset", "split", name, *split_args], env)
            final, rec["train_wall_s"] = cli(["train", "--dataset", name, "--base-model", model, "--follow", "--json"],
                                             env)
            run = json.loads(final.strip().splitlines()[-1])
            rec["run"] = {k: run.get(k) for k in ("id", "state", "step", "train_seconds", "best_metric", "train_rows")}
            save_partial(out, label, rec)
        run = rec["run"]
        dirs = {"new": work / f"eval-{name}-new", "today": work / f"eval-{name}-today"}
        for which, cwd in (("new", ROOT), ("today", baseline)):
            if f"evaluate_{which}_wall_s" in rec:
                continue
            if which == "today":
                flat_split_for_baseline(ws_root / "datasets" / name)
            _, rec[f"evaluate_{which}_wall_s"] = cli(["evaluate", "--run", run["id"], "--dataset", name, "--collection",
                                                      "shop", "--json", "--out", str(dirs[which])], env, cwd)
            save_partial(out, label, rec)
        rec["eval_dirs"] = {k: str(v) for k, v in dirs.items()}
        summary = load_summary(dirs["new"])
        rec["templates"] = {"base": summary.get("base_template"), "fine-tuned": summary.get("template")}
        rec["rows"] = summary["rows"]
        rec["sources"] = compare_prompts(dirs["new"], dirs["today"])
        rec["verdict"] = verdict_lines(summary)
        rec["verdict_ko"] = verdict_lines(summary, "ko")
        if model == "gemma3-270m":
            fresh, rec["freshness_wall_s"] = cli(["freshness", "--run", run["id"], "--collection", "shop", "--json"], env)
            data = json.loads(fresh)
            rec["freshness"] = {k: data[k] for k in ("reingest_seconds", "summary", "files")}
            rec["freshness"]["answers_after"] = [{k: r[k] for k in ("question", "source", "answer", "fact", "context")}
                                                 for r in data["after"]]
        save_partial(out, label, rec)
    return out


def flat_split_for_baseline(folder: Path) -> None:
    """The split files also where the commit before issue 21 reads them (the dataset folder itself; since issue 23 a
    split lives in a folder of its own that meta.json names, which this checkout reads and the old one cannot)."""
    import shutil

    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    record = meta.get("split") or {}
    sub = folder / str(record.get("dir") or "")
    if not record.get("dir") or not sub.is_dir():
        return
    for f in sub.iterdir():
        shutil.copy2(f, folder / f.name)


def recompute(path: Path) -> dict[str, Any]:
    """A figures file with its per-source tables computed again from the evaluations it left (`--work`), by this
    checkout's `report.readability` and statistics: a change to how an answer is judged reaches finished figures."""
    from workbench.compare.evaluation import load_summary
    from workbench.compare.report import verdict_lines

    out = json.loads(path.read_text(encoding="utf-8"))
    for label, rec in out["sets"].items():
        work = Path(out.get("work") or "/tmp/readers-figures")
        dirs = rec.get("eval_dirs") or {w: str(work / f"eval-{rec['dataset']}-{w}") for w in ("new", "today")}
        rec["sources"] = compare_prompts(Path(dirs["new"]), Path(dirs["today"]))
        rec["verdict"] = verdict_lines(load_summary(dirs["new"]))
        rec["verdict_ko"] = verdict_lines(load_summary(dirs["new"]), "ko")
    out["recomputed"] = dt.datetime.now().isoformat(timespec="seconds")
    return out


def figures_markdown(out: dict[str, Any]) -> str:
    from workbench.answers.answer import SOURCE_LABELS

    def ci(m: dict[str, Any]) -> str:
        return f"{m['mean']:.3f} [{m['lo']:.3f}, {m['hi']:.3f}]"

    def diff(d: dict[str, Any]) -> str:
        return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"

    lines = []
    for label, rec in out["sets"].items():
        lines += [f"### {label}: {rec['rows']} test rows, templates {rec['templates']}", "",
                  "| source | prompts | ended on own | cut as loop | at max tokens | repeats itself | recites instruction | "
                  "context header | char F1 | ROUGE-L | answer tokens |", "|" + "---|" * 11]
        for source, per in rec["sources"].items():
            for which in ("today", "new"):
                r, x = per[which]["readable"], per[which]
                n = r["answers"]
                lines.append(f"| {SOURCE_LABELS[source][0]} | {which} | {r['ended_on_own']}/{n} | {r['loop_cut']}/{n} | "
                             f"{r['max_new_tokens']}/{n} | {r['repeated_span']}/{n} | {r['instruction']}/{n} | "
                             f"{r['header']}/{n} | {ci(x['char_f1'])} | {ci(x['rouge_l'])} | {x['completion_tokens']} |")
        lines += ["", "new - today, per row: " + "; ".join(
            f"{SOURCE_LABELS[s][0]} char F1 {diff(p['char_f1_difference'])}, ROUGE-L {diff(p['rouge_l_difference'])}"
            for s, p in rec["sources"].items()), "", *rec["verdict"], ""]
        if rec.get("freshness"):
            f = rec["freshness"]
            lines.append(f"freshness (re-ingest {f['reingest_seconds']} s): " + "; ".join(
                f"{SOURCE_LABELS[s][0]} old before {m['old_before']}/{m['questions']}, new after {m['new_after']}/"
                f"{m['questions']}, old after {m['old_after']}/{m['questions']}, stale {len(m['stale'])}"
                for s, m in f["summary"].items()))
    return "\n".join(lines)


def markdown(out: dict[str, Any]) -> str:
    lines = ["| model | style | source | stop strings | loop n | ended on own | loop cut | at max | repeated span | "
             "instruction | header | char F1 | ROUGE-L | tokens |", "|" + "---|" * 14]
    for r in out["table"]:
        if r["lang"] != "all" or r["loop_tokens"] not in (0, 8, 12, 16):
            continue
        lines.append(f"| {r['model']} | {r['style']} | {r['source']} | {r['stop_strings']} | {r['loop_tokens']} | "
                     f"{r['ended_on_own']:.2f} | {r['loop_cut']:.2f} | {r['max_new_tokens']:.2f} | {r['repeated_span']:.2f} | "
                     f"{r['instruction']:.2f} | {r['header']:.2f} | {r['char_f1']:.3f} | {r['rouge_l']:.3f} | {r['tokens']} |")
    lines += ["", "Reference answers the loop cut would cut (of all dataset rows):", ""]
    for model, cuts in out["reference_loop_cuts"].items():
        lines.append(f"- {model}: " + ", ".join(f"n={n}: {c}" for n, c in cuts.items() if n != "references")
                     + f" of {cuts['references']}")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=["sweep", "figures", "recompute"])
    p.add_argument("--file", default="", help="recompute: a readers_figures_*.json to compute again from its evaluations")
    p.add_argument("--baseline-checkout", default="", help="figures: a checkout of the commit before issue 21")
    p.add_argument("--only", default="", help="figures: only the set whose label contains this")
    p.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    p.add_argument("--rows", type=int, default=40)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--work", default="/tmp/readers-bench")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    from workbench.models.registry import cpu_name

    t0 = time.time()
    if args.part == "recompute":
        path = Path(args.file)
        out = recompute(path)
        path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
        print(figures_markdown(out))
        return 0
    if args.part == "figures":
        if not args.baseline_checkout:
            raise SystemExit("figures needs --baseline-checkout (git worktree add --detach DIR 186bc51)")
        if args.work == "/tmp/readers-bench":
            args.work = "/tmp/readers-figures"
        out = figures(args)
    else:
        out = sweep(args)
    out.update(date=dt.datetime.now().isoformat(timespec="seconds"), cpu=cpu_name(), seconds=round(time.time() - t0),
               command="python -m bench.readers " + " ".join(sys.argv[1:]))
    name = f"readers_{args.part}{'_' + args.tag if args.tag else ''}_{dt.date.today():%Y-%m-%d}.json"
    (ROOT / "bench" / "results" / name).write_text(json.dumps(out, ensure_ascii=False, indent=1 if args.part == "figures" else None),
                                                 encoding="utf-8")
    print(figures_markdown(out) if args.part == "figures" else markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
