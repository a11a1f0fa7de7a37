"""What is alive on the GPU at a training step's peak: reads the allocator history that a run writes with
WORKBENCH_CUDA_MEMORY_SNAPSHOT=PREFIX (workbench.training.train_progress._MemoryTrace) and prints the live allocations at the peak,
grouped by the Python code that made them.

    python -m bench.memsnap PREFIX.pickle [--top 25] [--json OUT.json]

The replay counts only what was allocated after recording began (the model's weights and the optimizer state are
the `start_allocated_gb` in PREFIX.steps.jsonl); frees of older blocks lower the running total.
"""

from __future__ import annotations

import argparse
import json
import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any

# Frames from these places say little about *which* tensor it is; the first frame outside them names it.
_PLUMBING = ("/torch/nn/modules/module.py", "/torch/utils/checkpoint.py", "/torch/autograd/", "/torch/_dynamo/",
             "/torch/_functorch/", "/torch/_compile.py", "/torch/_tensor.py", "/torch/amp/", "/torch/_ops.py",
             "/torch/_library/", "/torch/_higher_order_ops/", "/accelerate/", "/torch/nn/functional.py",
             "/torch/_inductor/", "/torch/fx/", "/torch/utils/_contextlib.py", "<eval_with_key>", "/torch/overrides.py")


def _frame(f: dict[str, Any]) -> str:
    name = f.get("filename", "?")
    for marker in ("site-packages/", "/tmp/site/", "/workbench/", "/bench/"):
        if marker in name:
            name = name.split(marker, 1)[1]
            break
    return f"{name}:{f.get('line')}:{f.get('name')}"


def _key(frames: list[dict[str, Any]], depth: int = 3) -> tuple[str, str]:
    """(the first frame outside the plumbing, a short chain of the frames under it) of an allocation."""
    useful = [f for f in frames if not any(p in f.get("filename", "") for p in _PLUMBING)]
    if not useful:
        return ("<no Python frame: autograd engine / C++>", "")
    return (_frame(useful[0]), " <- ".join(_frame(f) for f in useful[1:depth + 1]))


def analyse(snapshot: dict[str, Any], top: int = 25) -> dict[str, Any]:
    traces = snapshot.get("device_traces") or []
    device = max(range(len(traces)), key=lambda i: len(traces[i])) if traces else 0
    events = traces[device] if traces else []
    live: dict[int, tuple[int, list[dict[str, Any]]]] = {}
    cur = peak = 0
    peak_index = -1
    for i, e in enumerate(events):
        if e["action"] == "alloc":
            live[e["addr"]] = (e["size"], e.get("frames") or [])
            cur += e["size"]
            if cur > peak:
                peak, peak_index = cur, i
        elif e["action"] == "free_completed":
            cur -= e["size"]
            live.pop(e["addr"], None)
    # Replay again up to the peak to know what was alive there.
    live = {}
    for e in events[:peak_index + 1]:
        if e["action"] == "alloc":
            live[e["addr"]] = (e["size"], e.get("frames") or [])
        elif e["action"] == "free_completed":
            live.pop(e["addr"], None)
    groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"bytes": 0, "count": 0, "chains": defaultdict(int),
                                                            "sizes": defaultdict(int)})
    for size, frames in live.values():
        where, chain = _key(frames)
        g = groups[where]
        g["bytes"] += size
        g["count"] += 1
        g["chains"][chain] += size
        g["sizes"][size] += 1
    rows = []
    for where, g in sorted(groups.items(), key=lambda kv: -kv[1]["bytes"])[:top]:
        rows.append({"where": where, "mib": round(g["bytes"] / 2**20, 1), "count": g["count"],
                     "largest_sizes_mib": [[round(s / 2**20, 2), n] for s, n in sorted(g["sizes"].items(), reverse=True)[:4]],
                     "chain": max(g["chains"].items(), key=lambda kv: kv[1])[0]})
    at_peak = events[peak_index] if peak_index >= 0 else {}
    return {"events": len(events), "peak_above_start_mib": round(peak / 2**20, 1),
            "live_at_peak_mib": round(sum(s for s, _ in live.values()) / 2**20, 1), "live_blocks": len(live),
            "peak_event": {"size_mib": round(at_peak.get("size", 0) / 2**20, 2),
                           "where": _key(at_peak.get("frames") or [], depth=6)} if at_peak else None,
            "groups": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("snapshot", type=Path)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    with args.snapshot.open("rb") as f:
        result = analyse(pickle.load(f), args.top)
    steps = args.snapshot.with_suffix(".steps.jsonl")
    if steps.is_file():
        result["steps"] = [json.loads(line) for line in steps.read_text().splitlines() if line.strip()]
    text = json.dumps(result, indent=1, ensure_ascii=False)
    if args.json:
        args.json.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
