"""Readers that answer and stop (issue 21): how each base model is best asked, and where an answer should end.

    python -m bench.readers sweep [--models gemma3-270m smollm2-135m] [--rows 40] [--work /tmp/readers-bench]

On rows of the sample shop's validation split (never the test split, which the figures are measured on), each model
answers as base and base + RAG with each prompt style it could get: its chat template, and the question -> answer
examples of `workbench.fewshot` (`completion`). Every answer is generated once, greedily, up to --max-new-tokens, with
no stop string and no loop cut (stop tokens only), and its token ids are kept. The end-of-answer rules are then
applied to those same generations (`workbench.stopping.AnswerCutter`), so every rule is compared on identical text:

- stop strings: none, the blank line and marker lines of `fewshot.STOP_STRINGS`, or any line break;
- the loop cut of `GenerationConfig.loop_tokens`: n = 0 (off), 4, 6, 8, 12, 16, 24, 32.

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
    if not (work / "datasets" / "shop" / "test.csv").is_file():
        steps += [["dataset", "import", str(ROOT / "examples/alpaca/shop_qa.csv"), "--name", "shop"], ["dataset", "split", "shop"]]
    if not (work / "vectorstore").is_dir():
        steps.insert(0, ["ingest", str(ROOT / "examples/shop"), "--collection", "shop"])
    for args in steps:
        log("python -m workbench " + " ".join(args))
        subprocess.run([sys.executable, "-m", "workbench", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def rules() -> dict[str, tuple[str, ...]]:
    from workbench.fewshot import STOP_STRINGS

    markers = tuple(s for s in STOP_STRINGS if s != "\n\n")
    return {"none": (), "blank line + markers": STOP_STRINGS, "line break + markers": ("\n",) + markers}


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    from workbench import answer as an
    from workbench.alpaca import load_split
    from workbench.config import Workspace
    from workbench.fewshot import language_of
    from workbench.inference import GenerationConfig, load_generator
    from workbench.metrics import answer_flags, char_f1, rouge_l
    from workbench.prompts import instruction_sentences
    from workbench.stopping import STOPPED_ON_ITS_OWN, AnswerCutter, loop_start

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
    p.add_argument("part", choices=["sweep"])
    p.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    p.add_argument("--rows", type=int, default=40)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--work", default="/tmp/readers-bench")
    p.add_argument("--tag", default="")
    args = p.parse_args()
    from workbench.models import cpu_name

    t0 = time.time()
    out = sweep(args)
    out.update(date=dt.datetime.now().isoformat(timespec="seconds"), cpu=cpu_name(), seconds=round(time.time() - t0),
               command="python -m bench.readers " + " ".join(sys.argv[1:]))
    name = f"readers_sweep{'_' + args.tag if args.tag else ''}_{dt.date.today():%Y-%m-%d}.json"
    (ROOT / "bench" / "results" / name).write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    print(markdown(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
