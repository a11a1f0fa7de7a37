"""CPU proof of the fine-tuning stage: the packaged SmolLM2 fine-tuned on the sample dataset on this machine.

    python -m bench.train_cpu [--work /tmp/wb-cpu] [--out bench/out] [--max-new-tokens 64]

1. imports `examples/alpaca/shop_qa.csv` and splits it 9:1 (then 8:2 for validation), as the dataset page does;
2. scores the base model on the test split: answer loss (teacher forced, answer tokens only) and character F1 of
   greedy answers against the references (`workbench.compare.metrics.char_f1`);
3. trains with the workbench's defaults through the same path as the page and the CLI (`workbench.training.runs`: a child
   process `python -m workbench train RUN_DIR`), timing it;
4. scores the fine-tuned adapter the same way (one loaded base model, `workbench.answers.inference`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# Before torch loads OpenMP: spinning threads are many times slower when other processes share the cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def answer_loss(model: Any, tokenizer: Any, rows: list[dict[str, Any]], template: str) -> float:
    """Mean negative log-likelihood per answer token over `rows` (the eval loss on the test split)."""
    import torch

    from workbench.training.trainer import tokenize_rows

    examples, _ = tokenize_rows(rows, tokenizer, template, 512)  # type: ignore[arg-type]
    total, count = 0.0, 0
    with torch.inference_mode():
        for ex in examples:
            ids = torch.tensor([ex["input_ids"]])
            labels = ids.masked_fill(torch.tensor([ex["completion_mask"]]) == 0, -100)
            n = int((labels[:, 1:] != -100).sum())
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    return total / max(count, 1)


def score(gen: Any, rows: list[dict[str, Any]], adapter: str | None, template: str, max_new: int) -> dict[str, Any]:
    from workbench.answers.inference import GenerationConfig
    from workbench.compare.metrics import char_f1

    t = time.time()
    if adapter is None and gen.adapters:
        with gen.model.disable_adapter():
            loss = answer_loss(gen.model, gen.tokenizer, rows, template)
    else:
        if adapter:
            gen.model.set_adapter(adapter)
        loss = answer_loss(gen.model, gen.tokenizer_for(adapter), rows, template)
    settings = GenerationConfig(max_new_tokens=max_new)
    f1s, samples = [], []
    for row in rows:
        prompt = gen.format_prompt(row["instruction"], row.get("input") or "", adapter=adapter, template=template)
        res = gen.generate(prompt, adapter=adapter, settings=settings, template=template)
        f1s.append(char_f1(res.text, row["output"]))
        if len(samples) < 3:
            samples.append({"q": row["instruction"], "ref": row["output"], "answer": res.text})
    return {"answer_loss": round(loss, 4), "perplexity": round(math.exp(loss), 2),
            "char_f1": round(statistics.mean(f1s), 4), "seconds": round(time.time() - t, 1), "samples": samples}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/wb-cpu"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/wb-cpu/out"))
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="TrainConfig overrides")
    args = ap.parse_args(argv)
    os.environ["WORKBENCH_HOME"] = str(args.work / "ws")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from workbench.answers.inference import load_generator
    from workbench.cli.train import parse_value
    from workbench.common.config import Workspace
    from workbench.dataset.alpaca import DatasetConfig, SplitConfig, import_dataset, load_split, split_dataset
    from workbench.training.finetune import TrainConfig
    from workbench.training.runs import start_training, wait_run

    ws = Workspace.default().ensure()
    cache = ROOT / ".pytest_cache" / "workbench" / "models"
    if cache.is_dir() and not ws.models.is_symlink() and not any(ws.models.iterdir()):
        ws.models.rmdir()
        ws.models.symlink_to(cache, target_is_directory=True)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": " ".join(sys.argv),
                              "cpu_threads": os.cpu_count()}
    import_dataset(ROOT / "examples/alpaca/shop_qa.csv", DatasetConfig(name="shop-qa"), workspace=ws, overwrite=True)
    result["split"] = split_dataset("shop-qa", SplitConfig(), workspace=ws).sizes
    test = load_split("shop-qa", "test", ws)
    config = TrainConfig.from_dict({"dataset": "shop-qa", **{k: parse_value(v) for k, v in
                                                              (s.split("=", 1) for s in args.set)}})
    result["config"] = config.to_dict()
    gen = load_generator(config.base_model, ws)
    cached = args.out / "before.json"  # the base model's score depends only on the split, the template, the length
    key = {"split": result["split"], "template": config.prompt_template, "max_new_tokens": args.max_new_tokens,
           "base_model": config.base_model}
    before = json.loads(cached.read_text()) if cached.is_file() else {}
    if before.get("key") != key:
        before = {"key": key, **score(gen, test, None, config.prompt_template, args.max_new_tokens)}
        cached.write_text(json.dumps(before, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    result["before"] = {k: v for k, v in before.items() if k != "key"}
    print(json.dumps(result["before"], ensure_ascii=False), flush=True)
    t = time.time()
    run = start_training(config, ws)
    run = wait_run(run.id, ws, timeout=7200, poll=5)
    result["train"] = {"run": run.id, "state": run.status.get("state"), "error": run.status.get("error"),
                       "wall_s": round(time.time() - t, 1), "train_seconds": run.status.get("train_seconds"),
                       "steps": run.status.get("step"), "tokens_per_s": run.status.get("tokens_per_s"),
                       "best_metric": run.status.get("best_metric"), "resolved": run.status.get("resolved", {}).get("notes"),
                       "eval_losses": [m["eval_loss"] for m in run.metrics() if "eval_loss" in m]}
    print(json.dumps(result["train"], ensure_ascii=False), flush=True)
    gen.attach_adapter(run.id, run.adapter_dir)
    result["after"] = score(gen, test, run.id, config.prompt_template, args.max_new_tokens)
    (args.out / "train_cpu.json").write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result["after"], ensure_ascii=False), flush=True)
    return 0 if result["train"]["state"] == "completed" else 1


if __name__ == "__main__":
    raise SystemExit(main())
