"""Compare's four columns: one after another (before issue 24) against one batched generation (now).

    python -m bench.four_columns --workspace WS --run RUN_ID [--questions 8] [--collection shop] [--repeats 1]

On a workspace with a trained run and a collection (e.g. the one `python -m bench.readers figures` leaves), the first
`--questions` rows of the run's test split (Korean and English in the sample shop) are put to base, fine-tuned,
base + RAG and fine-tuned + RAG through `workbench.answers.answer`, both ways, in this one process with the model loaded once,
alternating per question so that a noisy machine hurts both alike:

- before: each column's own stream, read to its end before the next one starts (`Generator.stream` per source, what
  the page did before);
- after: `answer.ask`, the four in one mixed-adapter batch (`Generator.stream_many`), read in turn (`answer.interleave`).

Per question: the wall time until all four answers are complete, both ways, and whether the answers are the same
(greedy; a padded batch may round differently). Prints medians and the after / before ratio; writes
bench/results/four_columns_<model>_<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workspace", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--collection", default="shop")
    p.add_argument("--questions", type=int, default=8)
    p.add_argument("--repeats", type=int, default=1)
    args = p.parse_args()
    os.environ["WORKBENCH_HOME"] = args.workspace

    from workbench.answers import answer
    from workbench.answers.inference import GenerationConfig, load_generator_for_run
    from workbench.common.config import Workspace
    from workbench.dataset.alpaca import load_split
    from workbench.training.runs import get_run

    ws = Workspace(Path(args.workspace))
    run = get_run(args.run, ws)
    gen = load_generator_for_run(run, ws)
    sources = list(answer.DEFAULT_SOURCES)
    setup = answer.prepare(sources, ws, run=run, collection=args.collection, generator=gen)
    settings = GenerationConfig()
    rows = load_split(run.config.dataset, "test", ws)[: args.questions]
    answer.ask(rows[0]["instruction"], sources, setup, settings).results()  # warm-up: first-call costs out of both

    def before(question: str) -> dict[str, str]:
        chunks, _ = answer.retrieve_context(setup, question)  # retrieval once for both RAG columns, as the page does
        out = {}
        for s in sources:
            _, _, prompt = answer.prompt_for(setup, s, question, "", chunks)
            stream = gen.stream(prompt, adapter=setup.adapter if s in answer.FT_SOURCES else None, settings=settings,
                                template=setup.template_for(s))
            for _ in stream:
                pass
            out[s] = stream.result.text
        return out

    def after(question: str) -> dict[str, str]:
        asked = answer.ask(question, sources, setup, settings)
        for _ in answer.interleave(asked.streams):
            pass
        return {s: st.result.text for s, st in asked.streams.items()}

    records = []
    for rep in range(args.repeats):
        for i, row in enumerate(rows):
            q = row["instruction"]
            order = (("before", before), ("after", after)) if (i + rep) % 2 == 0 else (("after", after), ("before", before))
            rec: dict = {"question": q}
            for name, fn in order:
                t0 = time.perf_counter()
                rec[f"{name}_answers"] = fn(q)
                rec[f"{name}_s"] = round(time.perf_counter() - t0, 3)
            rec["same_answers"] = rec["before_answers"] == rec["after_answers"]
            records.append(rec)
            print(f"{rec['before_s']:6.2f} s  {rec['after_s']:6.2f} s  same={rec['same_answers']}  {q[:40]}", flush=True)
    b = statistics.median(r["before_s"] for r in records)
    a = statistics.median(r["after_s"] for r in records)
    ratios = [r["after_s"] / r["before_s"] for r in records]
    out = {"date": dt.date.today().isoformat(), "base_model": run.config.base_model, "run": run.id,
           "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "settings": settings.to_dict(),
           "questions": len(rows), "repeats": args.repeats, "median_before_s": round(b, 2),
           "median_after_s": round(a, 2), "median_ratio_after_over_before": round(statistics.median(ratios), 3),
           "same_answers": sum(r["same_answers"] for r in records), "records": records}
    name = str(run.config.base_model).replace("/", "_")
    path = ROOT / "bench" / "results" / f"four_columns_{name}_{out['date']}.json"
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1), encoding="utf-8")
    print(f"median before {b:.2f} s, after {a:.2f} s, ratio {out['median_ratio_after_over_before']}; "
          f"same answers {out['same_answers']}/{len(records)} -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
