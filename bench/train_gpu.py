"""GPU proof and benchmark of the fine-tuning stage, through the workbench's own training entry point.

Everything that needs the GPU is measured here, in one script:

    python -m bench.train_gpu --phase single --out $OUT      # one H200: end to end + benchmark (a) (b) (c)
    python -m bench.train_gpu --phase multi --out $OUT       # two H200s: 2 GPUs against 1 (torchrun, NCCL)
    python -m bench.train_gpu --tiny --phase single          # the same path on CPU with a tiny model (a dry run)
    python -m bench.train_gpu --phase raft --steps 30 --out $OUT  # one H200: a plain run against a raft run (#16)

What it does (each training run is `python -m workbench train RUN_DIR`, started by `workbench.training.runs`, one process per
run, so Unsloth and the plain backend never share a process):

1. builds a randomly initialised Llama-3-8B-shape model on the GPU (hidden 4096, 14336, 32 layers, 32 heads, 8 KV
   heads, vocab 128256), saves it in bf16, and a small word-level `PreTrainedTokenizerFast` (one token per word);
2. writes an Alpaca dataset whose rows have the token lengths of the sample dataset (prompt and answer lengths of
   `examples/alpaca/shop_qa.csv` under the alpaca template, measured with SmolLM2's tokenizer and baked in below).
   Answers are a learnable function of the question (each answer word is a question word shifted by 7), so the
   loss falls and eval losses can be compared;
3. trains (b) the workbench's default (Unsloth, 4-bit, padding-free 8 x 1), (c) the same with Transformers + PEFT,
   (a) the tutorial's configuration (Unsloth, 4-bit, padded 2 x 4), all with evaluation and early stopping;
4. for (b): merges the adapter into 16-bit weights (`python -m workbench export ID --merged`), then loads the base
   model with the adapter (`workbench.answers.inference`) and streams an answer, and loads the merged model and generates.

`--phase raft` (RAG-aware fine-tuning, issue #16): the default configuration twice with identical settings, once on
the rows above and once on the same rows with a retrieved context in their prompt (the Alpaca input section), as long
as the context the CPU raft run of the sample shop added per row (`--context-tokens`, the mean; each row draws 0.7x to
1.3x of it). Speed and memory depend on token counts only, so random words stand for the chunks; the context itself is
built and tested on CPU (tests/test_train_context.py, bench/compare_loop.py --context raft).

Results go to OUT/train_gpu.json (and the run logs to OUT/train_gpu.log) as each step finishes.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LLAMA3_8B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=4096, max_position_embeddings=2048, rope_theta=10000.0)
SUBVOCAB = 2000  # words the rows are drawn from
SHIFT = 7  # answer word = question word + SHIFT

# Token lengths of examples/alpaca/shop_qa.csv (499 rows) under the alpaca template, measured on 2026-11-29 with
# SmolLM2-135M's tokenizer (the workbench's default model; the only one available offline): prompt tokens
# (template included, 30 of them) and answer tokens (EOS included). Mean 58.3 + 56.0, longest row 283.
#
PROMPT_TOKENS = [
    66, 46, 49, 63, 73, 76, 61, 56, 64, 59, 65, 73, 70, 74, 63, 79, 64, 64, 69, 65, 74, 62, 59, 52, 64, 78, 70, 58,
    57, 70, 68, 64, 59, 65, 69, 64, 62, 52, 52, 75, 51, 64, 60, 45, 73, 70, 49, 60, 55, 67, 67, 50, 55, 52, 51, 76,
    58, 52, 67, 59, 59, 55, 66, 57, 55, 59, 67, 78, 56, 74, 72, 65, 83, 67, 68, 63, 76, 71, 77, 52, 58, 55, 73, 50,
    67, 61, 50, 56, 50, 66, 58, 60, 58, 64, 67, 57, 64, 79, 45, 74, 91, 61, 72, 62, 67, 60, 62, 75, 62, 61, 62, 49,
    94, 73, 63, 66, 54, 73, 82, 63, 63, 78, 74, 80, 62, 77, 68, 68, 51, 54, 57, 67, 59, 54, 59, 66, 65, 70, 58, 76,
    55, 56, 69, 60, 63, 73, 63, 66, 58, 73, 64, 70, 58, 71, 72, 69, 61, 60, 52, 62, 66, 51, 58, 55, 70, 81, 61, 65,
    64, 70, 69, 60, 58, 82, 86, 76, 66, 67, 54, 62, 78, 62, 60, 58, 61, 67, 75, 58, 60, 86, 59, 59, 64, 58, 65, 49,
    71, 89, 76, 66, 83, 62, 63, 68, 66, 56, 53, 90, 57, 74, 81, 72, 69, 60, 67, 69, 67, 56, 61, 66, 59, 56, 57, 55,
    58, 66, 63, 57, 54, 63, 53, 60, 61, 61, 66, 59, 65, 34, 36, 35, 42, 36, 37, 38, 38, 36, 42, 38, 38, 38, 37, 39,
    38, 36, 36, 37, 36, 35, 36, 36, 40, 37, 38, 37, 38, 39, 36, 37, 35, 39, 36, 34, 38, 37, 36, 39, 36, 38, 36, 37,
    38, 43, 44, 44, 45, 44, 38, 39, 36, 36, 36, 36, 37, 37, 38, 39, 40, 39, 39, 38, 40, 40, 37, 38, 35, 35, 37, 35,
    35, 35, 36, 36, 36, 36, 40, 38, 36, 40, 38, 42, 34, 37, 38, 37, 38, 36, 38, 36, 35, 37, 38, 37, 36, 37, 37, 34,
    37, 36, 36, 36, 38, 40, 39, 38, 44, 40, 36, 35, 38, 36, 39, 38, 40, 36, 38, 37, 37, 40, 39, 41, 52, 40, 38, 75,
    57, 41, 38, 71, 72, 66, 63, 40, 54, 68, 63, 36, 50, 41, 91, 52, 69, 61, 43, 59, 60, 37, 78, 42, 71, 66, 81, 38,
    71, 38, 59, 46, 41, 68, 75, 41, 77, 86, 40, 42, 74, 94, 42, 76, 68, 42, 62, 40, 67, 41, 39, 66, 41, 61, 64, 39,
    65, 61, 47, 40, 55, 47, 67, 56, 45, 37, 81, 40, 72, 72, 72, 61, 42, 62, 45, 64, 36, 42, 55, 39, 70, 39, 62, 39,
    52, 39, 37, 75, 72, 43, 39, 81, 44, 38, 70, 44, 72, 44, 81, 75, 42, 65, 74, 43, 70, 72, 45, 69, 43, 53, 37, 68,
    72, 44, 131, 145, 131, 118, 169, 154, 139, 141, 167, 135, 177, 128, 172, 154, 121, 75, 65, 81, 72, 72, 60
]
ANSWER_TOKENS = [
    58, 89, 22, 58, 89, 22, 58, 76, 59, 83, 76, 59, 83, 76, 59, 83, 154, 137, 154, 137, 154, 137, 60, 60, 85, 85,
    68, 68, 84, 84, 81, 94, 43, 61, 39, 51, 27, 57, 75, 97, 71, 71, 40, 85, 87, 53, 122, 122, 94, 94, 66, 33, 51,
    51, 78, 73, 56, 90, 90, 73, 67, 67, 62, 62, 72, 72, 114, 114, 112, 112, 85, 79, 89, 91, 70, 77, 75, 54, 77, 83,
    83, 110, 71, 46, 46, 40, 37, 50, 91, 91, 47, 67, 67, 57, 96, 96, 153, 89, 76, 72, 88, 97, 93, 30, 77, 91, 75,
    75, 117, 124, 119, 153, 115, 115, 134, 134, 50, 64, 91, 75, 75, 111, 70, 163, 163, 73, 71, 79, 60, 60, 96, 44,
    44, 70, 82, 82, 95, 95, 62, 105, 53, 49, 101, 109, 115, 115, 131, 131, 72, 72, 82, 82, 61, 61, 64, 59, 53, 53,
    117, 117, 85, 139, 78, 78, 89, 89, 112, 112, 91, 90, 76, 76, 58, 102, 102, 63, 62, 42, 67, 53, 53, 64, 56, 56,
    65, 77, 77, 80, 80, 131, 131, 49, 124, 69, 69, 65, 61, 75, 68, 69, 142, 118, 128, 98, 60, 120, 120, 95, 137,
    137, 74, 124, 78, 149, 67, 95, 95, 53, 53, 116, 116, 75, 46, 50, 50, 71, 67, 63, 99, 60, 59, 59, 63, 51, 57, 43,
    40, 19, 22, 19, 22, 18, 16, 18, 16, 41, 38, 41, 16, 22, 28, 28, 33, 33, 49, 49, 17, 9, 25, 20, 20, 24, 21, 27,
    17, 12, 28, 11, 11, 13, 25, 25, 22, 15, 48, 26, 24, 28, 21, 27, 18, 41, 41, 42, 28, 29, 21, 15, 23, 23, 9, 9,
    21, 23, 19, 19, 12, 25, 12, 31, 13, 12, 18, 23, 12, 11, 15, 19, 22, 28, 15, 15, 18, 18, 23, 23, 29, 21, 20, 35,
    28, 30, 16, 27, 35, 38, 28, 24, 10, 17, 18, 25, 25, 18, 30, 13, 12, 37, 40, 28, 20, 23, 23, 42, 28, 6, 20, 22,
    11, 14, 12, 15, 17, 12, 28, 40, 25, 40, 30, 39, 40, 14, 10, 35, 34, 14, 11, 44, 51, 38, 35, 19, 36, 35, 58, 17,
    35, 23, 42, 38, 36, 61, 19, 43, 59, 16, 51, 21, 37, 58, 40, 19, 37, 19, 30, 43, 22, 41, 61, 20, 58, 93, 21, 24,
    137, 82, 44, 45, 79, 14, 45, 21, 48, 18, 19, 37, 17, 33, 52, 18, 39, 56, 17, 18, 39, 17, 41, 65, 20, 15, 48, 18,
    38, 63, 78, 56, 31, 75, 29, 40, 21, 11, 39, 18, 42, 18, 37, 18, 40, 21, 11, 77, 72, 34, 15, 41, 13, 12, 37, 14,
    41, 14, 41, 52, 14, 90, 56, 33, 96, 57, 18, 91, 29, 38, 11, 50, 47, 18, 69, 64, 68, 69, 114, 79, 73, 91, 46, 46,
    71, 87, 60, 58, 64, 33, 26, 41, 22, 18, 19
]


class Bench:
    def __init__(self, out: Path, tiny: bool, budget_s: float) -> None:
        self.out = out
        self.tiny = tiny
        self.t0 = time.time()
        self.budget_s = budget_s
        self.results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "tiny": tiny, "runs": {}}
        self.log_path = out / "train_gpu.log"

    # --- reporting ---------------------------------------------------------------------------------------------
    def log(self, message: str) -> None:
        line = f"[{time.time() - self.t0:7.1f}s] {message}"
        print(line, flush=True)
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")

    def save(self) -> None:
        self.results["elapsed_s"] = round(time.time() - self.t0, 1)
        (self.out / "train_gpu.json").write_text(json.dumps(self.results, indent=2, default=str) + "\n")

    def time_left(self) -> float:
        return self.budget_s - (time.time() - self.t0)

    # --- setup -------------------------------------------------------------------------------------------------
    def environment(self) -> None:
        import torch

        info: dict[str, Any] = {"python": sys.version.split()[0], "torch": torch.__version__}
        for mod in ("transformers", "peft", "trl", "accelerate", "bitsandbytes", "unsloth", "datasets"):
            try:
                info[mod] = __import__("importlib.metadata").metadata.version(mod)
            except Exception:  # not installed: recorded as such
                info[mod] = None
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        self.results["environment"] = info
        self.log(f"environment {info}")

    def build_model(self, folder: Path) -> Path:
        """A randomly initialised Llama of the chosen shape (bf16, built on the GPU) plus a word-level tokenizer."""
        import torch
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

        from workbench.models.prompts import ALPACA_TEMPLATE_INPUT, TUTORIAL_TEMPLATE

        shape = TINY if self.tiny else LLAMA3_8B
        t = time.time()
        specials = ["<unk>", "<s>", "</s>", "<pad>"]
        template_words = sorted(set((TUTORIAL_TEMPLATE + ALPACA_TEMPLATE_INPUT).replace(":", " : ").split()) | {":"})
        words = [f"w{i}" for i in range(shape["vocab_size"] - len(specials) - len(template_words))]
        vocab = {w: i for i, w in enumerate(specials + template_words + words)}
        tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                            pad_token="<pad>", model_max_length=shape["max_position_embeddings"])
        config = LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False,
                             torch_dtype="bfloat16")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)
        with torch.device(device):
            model = LlamaForCausalLM(config).to(torch.bfloat16 if device == "cuda" else torch.float32)
        params = sum(p.numel() for p in model.parameters())
        shutil.rmtree(folder, ignore_errors=True)
        model.save_pretrained(str(folder), max_shard_size="5GB")
        tokenizer.save_pretrained(str(folder))
        del model
        if device == "cuda":
            torch.cuda.empty_cache()
        self.results["model"] = {"shape": "tiny" if self.tiny else "llama-3-8b", "params_b": round(params / 1e9, 3),
                                 "build_and_save_s": round(time.time() - t, 1), **shape}
        self.log(f"model {params / 1e9:.2f}B parameters built and saved to {folder} in {time.time() - t:.0f} s")
        return folder

    def build_dataset(self, ws: Any, tokenizer_dir: Path, n_rows: int, context_tokens: int = 0, name: str = "bench") -> str:
        """Rows with the sample dataset's token lengths; answers are the question's words shifted by SHIFT. With
        `context_tokens`, the same rows with about that many context words each in their input (a raft run's length)."""
        from transformers import AutoTokenizer

        from workbench.dataset.alpaca import SplitConfig, save_dataset, split_dataset
        from workbench.models.prompts import format_example

        tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        probe = format_example({"instruction": "w1", "output": "w2"}, template="alpaca", tokenizer=tok)
        overhead = len(tok(probe["prompt"], add_special_tokens=False)["input_ids"]) - 1
        rng = random.Random(123)
        rows = []
        for i in range(n_rows):
            k = i % len(PROMPT_TOKENS)
            q_len = max(PROMPT_TOKENS[k] - overhead, 1)
            a_len = max(ANSWER_TOKENS[k] - 1, 1)  # the EOS is appended by format_example
            q = [rng.randrange(SUBVOCAB) for _ in range(q_len)]
            a = [(q[j % q_len] + SHIFT) % SUBVOCAB for j in range(a_len)]
            rows.append({"instruction": " ".join(f"w{x}" for x in q), "input": "", "output": " ".join(f"w{x}" for x in a)})
        if context_tokens:  # its own generator: the questions and answers stay those of the plain rows
            ctx_rng = random.Random(456)
            for r in rows:
                n = max(int(context_tokens * ctx_rng.uniform(0.7, 1.3)), 1)
                r["input"] = " ".join(f"w{ctx_rng.randrange(SUBVOCAB)}" for _ in range(n))
        save_dataset(name, rows, source={"kind": "bench/train_gpu.py"}, workspace=ws, overwrite=True,
                     settings={"tokenizer": "", "max_tokens": None})
        report = split_dataset(name, SplitConfig(test_size=0.05, val_size=0.06, seed=42), workspace=ws)
        lengths = [len(tok(format_example(r, template="alpaca", tokenizer=tok)["prompt"]
                           + format_example(r, template="alpaca", tokenizer=tok)["completion"],
                           add_special_tokens=False)["input_ids"]) for r in rows]
        want = [PROMPT_TOKENS[i % len(PROMPT_TOKENS)] + ANSWER_TOKENS[i % len(PROMPT_TOKENS)] for i in range(n_rows)]
        key = "dataset" if name == "bench" else f"dataset_{name}"
        self.results[key] = {"rows": n_rows, "sizes": report.sizes, "template_overhead": overhead,
                             "mean_tokens": round(statistics.mean(lengths), 1),
                             "sample_mean_tokens": round(statistics.mean(want), 1),
                             "max_tokens": max(lengths), "context_tokens": context_tokens}
        self.log(f"{key} {self.results[key]}")
        return name

    # --- runs --------------------------------------------------------------------------------------------------
    def train(self, name: str, config: Any, ws: Any, timeout: float) -> dict[str, Any]:
        """One run through the workbench's own path: jobs.create_run + `python -m workbench train RUN_DIR`."""
        run = self.start(name, config, ws)
        return self.collect(name, config, ws, run.id, time.time(), timeout)

    def train_parallel(self, jobs: dict[str, tuple[Any, str]], ws: Any, timeout: float) -> None:
        """Several single-GPU runs at once, each on its own GPU (CUDA_VISIBLE_DEVICES)."""
        started = {}
        for name, (config, gpu) in jobs.items():
            extra = {"CUDA_VISIBLE_DEVICES": gpu, **VARIANT_ENV.get(name.split("@")[1] if "@" in name else "", {})}
            saved = {k: os.environ.get(k) for k in extra}
            os.environ.update(extra)
            try:
                started[name] = (config, self.start(name, config, ws).id, time.time())
            finally:
                for k, v in saved.items():
                    os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
        for name, (config, run_id, t) in started.items():
            self.collect(name, config, ws, run_id, t, max(timeout - (time.time() - t), 30))

    def train_queues(self, queues: dict[str, list[tuple[str, Any]]], ws: Any, timeout: float) -> None:
        """One queue of runs per GPU, the queues side by side (a thread each), the runs of a queue one after another."""
        import threading

        def work(gpu: str, jobs: list[tuple[str, Any]]) -> None:
            for name, config in jobs:
                if self.time_left() < 60:
                    self.log(f"{name}: skipped, {self.time_left():.0f} s left")
                    continue
                self.train_parallel({name: (config, gpu)}, ws, timeout=min(timeout, self.time_left() - 30))

        threads = [threading.Thread(target=work, args=(gpu, jobs)) for gpu, jobs in queues.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def start(self, name: str, config: Any, ws: Any) -> Any:
        from workbench.training.runs import create_run, start_run

        run = create_run(config, ws)
        self.log(f"{name}: run {run.id} ({config.backend}, {config.num_processes} process(es)) starting")
        return start_run(run.id, ws)

    def collect(self, name: str, config: Any, ws: Any, run_id: str, t: float, timeout: float) -> dict[str, Any]:
        from workbench.training.runs import get_run, wait_run

        run = get_run(run_id, ws)
        try:
            run = wait_run(run.id, ws, timeout=timeout, poll=2.0)
        except Exception as exc:  # the bench goes on with the other runs; the reason is recorded
            from workbench.training.runs import cancel_run

            cancel_run(run.id, ws, force=True)
            run = wait_run(run.id, ws, timeout=60)
            self.log(f"{name}: stopped after {timeout:.0f} s: {exc}")
        wall = time.time() - t
        with self.log_path.open("a", encoding="utf-8") as f:
            f.write(f"----- {name}: {run.log_path}\n{run.log_tail(60)}\n-----\n")
        metrics = run.metrics()
        steps = [m for m in metrics if "tokens_per_s" in m]
        evals = [m["eval_loss"] for m in metrics if "eval_loss" in m]
        steady = [m["tokens_per_s"] for m in steps if m["step"] > 5]
        s = run.status
        res = {"run": run.id, "state": s.get("state"), "error": s.get("error"), "backend": config.backend,
               "wall_s": round(wall, 1), "steps": s.get("step"), "train_step_seconds": s.get("train_step_seconds"),
               "real_tokens": s.get("num_input_tokens_seen"), "tokens_per_s": s.get("tokens_per_s"),
               "tokens_per_s_median_after_step5": round(statistics.median(steady), 1) if steady else None,
               "peak_gpu_mem_gb": s.get("peak_gpu_mem_gb") or max((m.get("gpu_mem_gb") or 0 for m in metrics), default=None),
               "peak_gpu_mem_gb_per_process": s.get("peak_gpu_mem_gb_per_process"),
               "peak_gpu_mem_gb_by_phase": s.get("peak_gpu_mem_gb_by_phase"),
               "group_by_length": (s.get("resolved") or {}).get("group_by_length"),
               "offload_embedding": (s.get("resolved") or {}).get("offload_embedding"),
               "median_step_s_after_step5": _median_step_seconds(metrics),
               "eval_losses": [round(x, 4) for x in evals], "final_eval_loss": round(evals[-1], 4) if evals else None,
               "best_metric": s.get("best_metric"), "stopped_early": s.get("stopped_early"),
               "resolved": (s.get("resolved") or {}).get("notes"), "rows_per_step": config.rows_per_step,
               "batching": (s.get("resolved") or {}).get("batching", config.batching),
               "micro_batch": config.per_device_train_batch_size,
               "grad_accum": config.gradient_accumulation_steps, "num_processes": config.num_processes,
               "adapter": str(run.adapter_dir) if run.adapter_dir else None}
        self.results["runs"][name] = res
        self.save()
        self.log(f"{name}: {json.dumps({k: res[k] for k in ('state', 'error', 'tokens_per_s', 'peak_gpu_mem_gb', 'final_eval_loss', 'wall_s')})}")
        return res

    def export_and_generate(self, run_ids: list[str], ws: Any, merge: bool) -> None:
        """Merge (child process), then stream from base + adapter and generate from the merged model (child)."""
        env = dict(os.environ, WORKBENCH_HOME=str(ws.root), PYTHONUNBUFFERED="1")
        if merge:
            t = time.time()
            r = subprocess.run([sys.executable, "-m", "workbench", "export", run_ids[0], "--merged", "--json"], cwd=ROOT,
                               env=env, capture_output=True, text=True, timeout=max(self.time_left(), 60))
            self.results["merge"] = {"returncode": r.returncode, "seconds": round(time.time() - t, 1),
                                     "output": r.stdout.strip()[-400:], "stderr": r.stderr.strip()[-600:]}
            self.log(f"merge: rc {r.returncode} in {time.time() - t:.0f} s")
            self.save()
        t = time.time()
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--generate", *run_ids], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=max(self.time_left(), 60))
        try:
            self.results["generate"] = json.loads(r.stdout.strip().splitlines()[-1])
        except (IndexError, json.JSONDecodeError):
            self.results["generate"] = {"returncode": r.returncode, "stderr": r.stderr.strip()[-1500:]}
        self.results["generate"]["seconds"] = round(time.time() - t, 1)
        self.log(f"generate: {json.dumps(self.results['generate'])[:600]}")
        self.save()


# Environment variants for --phase variants: "NAME@KEY" runs config NAME with VARIANT_ENV[KEY] in its environment.
VARIANT_ENV: dict[str, dict[str, str]] = {
    "ce05": {"UNSLOTH_CE_LOSS_TARGET_GB": "0.5"},
    "ce1": {"UNSLOTH_CE_LOSS_TARGET_GB": "1"},
    "tiled": {"UNSLOTH_TILED_MLP": "arctic"},  # Unsloth's MLP tiled over the sequence (less activation memory)
}


def _median_step_seconds(metrics: list[dict[str, Any]]) -> float | None:
    """Median seconds per optimizer step after step 5, from the tokens/s and tokens seen of consecutive lines."""
    rows = [m for m in metrics if "tokens_seen" in m and m.get("tokens_per_s")]
    dts = [(b["tokens_seen"] - a["tokens_seen"]) / b["tokens_per_s"] / max(b["step"] - a["step"], 1)
           for a, b in zip(rows, rows[1:]) if b["step"] > 5 and b["tokens_seen"] > a["tokens_seen"]]
    return round(statistics.median(dts), 3) if dts else None


def configs(model_dir: Path, steps: int, tiny: bool) -> dict[str, Any]:
    from workbench.training.finetune import TrainConfig

    common = dict(dataset="bench", base_model=str(model_dir), max_steps=steps, num_train_epochs=0.0,
                  eval_steps=max(steps // 3, 1), save_steps=max(steps // 3, 1), early_stopping_patience=3)
    if tiny:  # CPU: no 4-bit, no 8-bit optimizer
        common.update(quantization="none", optim="adamw_torch")
    variants = {  # batching x micro-batch, all at 8 rows per optimizer step (the tutorial's), for --phase variants
        "pf8": dict(batching="padding_free", group_by_length="off", per_device_train_batch_size=8,
                    gradient_accumulation_steps=1),
        "pad8": dict(batching="padded", group_by_length="off", per_device_train_batch_size=8, gradient_accumulation_steps=1),
        "pad8_grouped": dict(batching="padded", group_by_length="on", per_device_train_batch_size=8,
                             gradient_accumulation_steps=1),  # the GPU default since 2026-11-29 (second session)
        "pad4x2_grouped": dict(batching="padded", group_by_length="on", per_device_train_batch_size=4,
                               gradient_accumulation_steps=2),
    }
    return {
        **{f"unsloth_{k}": TrainConfig(**common, backend="unsloth", **v) for k, v in variants.items()},
        **{f"transformers_{k}": TrainConfig(**common, backend="transformers", **v) for k, v in variants.items()},
        "default": TrainConfig(**common, backend="unsloth"),
        "default_dropout0": TrainConfig(**common, backend="unsloth", lora_dropout=0.0),  # --phase memory: a diagnostic
        # the default with the input embeddings left on the GPU: what the offload costs and saves, in the same run
        "default_offload_off": TrainConfig(**common, backend="unsloth", offload_embedding="off"),
        "transformers": TrainConfig(**common, backend="transformers"),
        "tutorial": TrainConfig.tutorial(**common, backend="unsloth", **({"gradient_checkpointing": "off"} if tiny else {})),
    }


def generate_main(run_ids: list[str]) -> None:
    """Child process: stream from base + adapter(s) (workbench.answers.inference), then generate from the merged model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from workbench.answers.inference import GenerationConfig, load_generator
    from workbench.training.runs import get_run

    out: dict[str, Any] = {}
    runs = [get_run(r) for r in run_ids]
    t = time.time()
    gen = load_generator(runs[0].status["resolved_base_model"])
    out["load_base_s"] = round(time.time() - t, 1)
    rows = __import__("workbench.dataset.alpaca", fromlist=["load_split"]).load_split(runs[0].config.dataset, "test")
    prompt = gen.format_prompt(rows[0]["instruction"], template="alpaca")
    settings = GenerationConfig(max_new_tokens=24)
    answers = {}
    for run in runs:
        gen.attach_adapter(run.id, run.adapter_dir)
        stream = gen.stream(prompt, adapter=run.id, settings=settings, template="alpaca")
        pieces = list(stream)
        res = stream.result
        answers[run.id] = res.text
        out[f"stream_{run.config.backend}"] = {"pieces": len(pieces), "completion_tokens": res.completion_tokens,
                                               "tokens_per_s": res.tokens_per_s, "stopped": res.stopped,
                                               "text": res.text[:120],
                                               "joined_pieces_equal_text": "".join(pieces).strip() == res.text}
    base = gen.generate(prompt, adapter=None, settings=settings, template="alpaca")
    out["base_text"] = base.text[:120]
    out["adapter_differs_from_base"] = answers[runs[0].id] != base.text
    del gen
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    merged = get_run(run_ids[0]).merged_dir
    if merged is not None:
        t = time.time()
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForCausalLM.from_pretrained(str(merged), dtype=torch.bfloat16 if device == "cuda" else torch.float32).to(device)
        tok = AutoTokenizer.from_pretrained(str(merged))
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False).to(device)
        ids = model.generate(**enc, max_new_tokens=24, do_sample=False, eos_token_id=tok.eos_token_id,
                             pad_token_id=tok.pad_token_id)
        text = tok.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True).strip()
        out["merged"] = {"load_s": round(time.time() - t, 1), "text": text[:120],
                         "same_as_adapter": text == answers[run_ids[0]]}
    print(json.dumps(out, default=str))


# Mean extra tokens per training row that the context added in the CPU raft run of the sample shop (2026-12-03, Gemma 3
# 270M, context_k 2, 250 characters per chunk: 113,045 extra tokens over 359 rows, 5.83x the bare rows' tokens;
# docs/benchmarks.md, "RAG-aware fine-tuning").
CONTEXT_TOKENS = 315


def raft_phase(bench: Bench, cfgs: dict[str, Any], ws: Any, model_dir: Path, args: argparse.Namespace) -> None:
    """A plain run and a raft-length run with the same configuration (the default), one after the other on one GPU:
    real tokens/s, step time and peak memory of each, and their ratios."""
    raft_data = bench.build_dataset(ws, model_dir, args.rows, args.context_tokens, name="bench_raft")
    bench.save()
    plain_cfg = cfgs["default"]
    runs = (("plain", plain_cfg), ("raft", plain_cfg.replace(dataset=raft_data)))
    for i, (name, config) in enumerate(runs):
        # the raft rows are ~4x longer: the plain run gets a quarter of the time left, the raft run the rest
        bench.train(name, config, ws, timeout=max(bench.time_left() * (0.3 if i == 0 else 0.95), 60))
    r = bench.results["runs"]
    p, q = r.get("plain", {}), r.get("raft", {})

    def ratio(key: str) -> float | None:
        return round(q[key] / p[key], 3) if q.get(key) and p.get(key) else None

    bench.results["raft_vs_plain"] = {
        "tokens_per_s_ratio": ratio("tokens_per_s"), "median_tokens_per_s_ratio": ratio("tokens_per_s_median_after_step5"),
        "median_step_s_ratio": ratio("median_step_s_after_step5"), "real_tokens_ratio": ratio("real_tokens"),
        "wall_ratio": ratio("wall_s"), "peak_gpu_mem_gb": [p.get("peak_gpu_mem_gb"), q.get("peak_gpu_mem_gb")],
        "mean_row_tokens": [bench.results["dataset"]["mean_tokens"], bench.results["dataset_bench_raft"]["mean_tokens"]]}
    bench.log(f"raft vs plain: {bench.results['raft_vs_plain']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--phase", choices=["single", "multi", "merge", "variants", "memory", "raft"], default="single")
    ap.add_argument("--context-tokens", type=int, default=CONTEXT_TOKENS,
                    help="--phase raft: mean context tokens per row (default: what the CPU raft run of the sample shop added)")
    ap.add_argument("--runs", nargs="+", help="--phase variants: the configs to run, two at a time (one per GPU)")
    ap.add_argument("--tiny", action="store_true", help="a tiny model on CPU: checks the path, measures nothing")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "/tmp/train_gpu_out")))
    ap.add_argument("--steps", type=int, default=60, help="optimizer steps per run (the tutorial: 100)")
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--budget-s", type=float, default=560.0, help="skip what would not finish within this")
    ap.add_argument("--work", type=Path, default=Path("/tmp/wb-bench"))
    ap.add_argument("--generate", nargs="+", metavar="RUN_ID", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.generate:
        generate_main(args.generate)
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["WORKBENCH_HOME"] = str(args.work / "ws")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from workbench.common.config import Workspace

    bench = Bench(args.out, args.tiny, args.budget_s)
    bench.results["command"] = " ".join(sys.argv)
    bench.environment()
    ws = Workspace.default().ensure()
    model_dir = args.work / ("tiny-llama" if args.tiny else "llama3-8b-random")
    if not (model_dir / "config.json").is_file():
        bench.build_model(model_dir)
    bench.build_dataset(ws, model_dir, args.rows)
    bench.save()
    cfgs = configs(model_dir, args.steps, args.tiny)
    if args.phase == "merge":  # the end-to-end chain only: short training, merge, stream, merged generation
        res = bench.train("default", cfgs["default"], ws, timeout=bench.time_left() * 0.5)
        if res.get("adapter"):
            bench.export_and_generate([res["run"]], ws, merge=True)
    elif args.phase == "raft":
        raft_phase(bench, cfgs, ws, model_dir, args)
    elif args.phase == "variants":
        # Batching variants at equal rows per step, two at a time (one per GPU: the host has cores for both).
        import torch

        gpus = max(torch.cuda.device_count(), 1) if torch.cuda.is_available() else 1
        names = args.runs or ["tutorial", "unsloth_pf8", "unsloth_pad8", "unsloth_pad8_grouped"]
        for i in range(0, len(names), gpus):
            batch = names[i:i + gpus]
            if bench.time_left() < 100:
                bench.log(f"skipped {batch}: {bench.time_left():.0f} s left")
                break
            bench.train_parallel({n: (cfgs[n.split("@")[0]], str(g)) for g, n in enumerate(batch)}, ws,
                                 timeout=bench.time_left() / max((len(names) - i) / gpus, 1))
        r = bench.results["runs"]
        base = r.get("tutorial", {})
        bench.results["vs_tutorial"] = {
            n: {"median_ratio": round(v["tokens_per_s_median_after_step5"] / base["tokens_per_s_median_after_step5"], 2)
                if v.get("tokens_per_s_median_after_step5") and base.get("tokens_per_s_median_after_step5") else None,
                "whole_run_ratio": round(v["tokens_per_s"] / base["tokens_per_s"], 2)
                if v.get("tokens_per_s") and base.get("tokens_per_s") else None,
                "peak_ratio": round(v["peak_gpu_mem_gb"] / base["peak_gpu_mem_gb"], 3)
                if v.get("peak_gpu_mem_gb") and base.get("peak_gpu_mem_gb") else None,
                "eval_loss_rel_diff": round(abs(v["final_eval_loss"] - base["final_eval_loss"]) / base["final_eval_loss"], 4)
                if v.get("final_eval_loss") and base.get("final_eval_loss") else None}
            for n, v in r.items() if n != "tutorial"}
    elif args.phase == "memory":
        # Where the memory of a step goes: each run records the allocator's history of its first steps
        # (WORKBENCH_CUDA_MEMORY_SNAPSHOT), analysed by bench/memsnap.py; every step's peak and tokens go to the results.
        import torch

        from bench.memsnap import analyse

        gpus = max(torch.cuda.device_count(), 1) if torch.cuda.is_available() else 1
        names = args.runs or ["default", "tutorial", "default_dropout0"]
        snaps = args.work / "memsnap"
        snaps.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(names), gpus):
            batch = names[i:i + gpus]
            if bench.time_left() < 90:
                bench.log(f"skipped {batch}: {bench.time_left():.0f} s left")
                break
            for n in batch:
                VARIANT_ENV[f"snap_{n}"] = {"WORKBENCH_CUDA_MEMORY_SNAPSHOT": str(snaps / n),
                                            "WORKBENCH_CUDA_MEMORY_SNAPSHOT_STEPS": os.environ.get("SNAP_STEPS", "3")}
            bench.train_parallel({f"{n}@snap_{n}": (cfgs[n], str(g)) for g, n in enumerate(batch)}, ws,
                                 timeout=bench.time_left() / max((len(names) - i) / gpus, 1))
            for n in batch:
                pkl = snaps / f"{n}.pickle"
                steps = snaps / f"{n}.steps.jsonl"
                out: dict[str, Any] = {"steps": [json.loads(x) for x in steps.read_text().splitlines() if x.strip()]
                                       if steps.is_file() else None}
                if pkl.is_file():
                    import pickle

                    with pkl.open("rb") as f:
                        out.update(analyse(pickle.load(f)))
                bench.results.setdefault("memory", {})[n] = out
                bench.save()
                bench.log(f"memory {n}: peak above start {out.get('peak_above_start_mib')} MiB; top: "
                          + "; ".join(f"{g['mib']} MiB {g['where']}" for g in (out.get("groups") or [])[:8]))
    elif args.phase == "single":
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
            # The tutorial's configuration and then the default without the embedding offload on GPU 1, while the
            # default and then the plain backend run on GPU 0.
            bench.train_queues({"0": [("default", cfgs["default"]), ("transformers", cfgs["transformers"])],
                                "1": [("tutorial", cfgs["tutorial"]), ("default_offload_off", cfgs["default_offload_off"])]},
                               ws, timeout=bench.time_left() - 120)
        else:
            # Each run may take this share of the time still left (the rest is for later runs, merge and generation).
            for name, share in (("default", 0.3), ("transformers", 0.4), ("tutorial", 0.7)):
                bench.train(name, cfgs[name], ws, timeout=max(bench.time_left() * share, 60))
        done = [bench.results["runs"][n]["run"] for n in ("default", "transformers")
                if bench.results["runs"].get(n, {}).get("adapter")]
        if done and bench.time_left() > 60:
            bench.export_and_generate(done, ws, merge=bench.time_left() > 150)
        r = bench.results["runs"]
        if all(r.get(k, {}).get("tokens_per_s") for k in ("default", "tutorial")):
            bench.results["default_vs_tutorial"] = {
                "tokens_per_s_ratio": round(r["default"]["tokens_per_s"] / r["tutorial"]["tokens_per_s"], 2),
                "median_ratio": round(r["default"]["tokens_per_s_median_after_step5"]
                                      / r["tutorial"]["tokens_per_s_median_after_step5"], 2),
                "peak_mem_ratio": round((r["default"]["peak_gpu_mem_gb"] or 0) / (r["tutorial"]["peak_gpu_mem_gb"] or 1), 3),
                "eval_loss_rel_diff": round(abs(r["default"]["final_eval_loss"] - r["tutorial"]["final_eval_loss"])
                                            / r["tutorial"]["final_eval_loss"], 4)}
        off = r.get("default_offload_off", {})
        if off.get("tokens_per_s_median_after_step5") and r.get("default", {}).get("tokens_per_s_median_after_step5"):
            bench.results["embedding_offload"] = {  # the default against itself with the table on the GPU
                "median_ratio": round(r["default"]["tokens_per_s_median_after_step5"] / off["tokens_per_s_median_after_step5"], 3),
                "peak_gb": [r["default"]["peak_gpu_mem_gb"], off["peak_gpu_mem_gb"]]}
    else:
        import torch

        n = torch.cuda.device_count() if torch.cuda.is_available() else 2
        one = cfgs["default"]
        # One GPU each, at the same time: the default on GPU 0, the tutorial's configuration on GPU 1.
        bench.train_parallel({"gpus_1": (one, "0"), "tutorial_1gpu": (cfgs["tutorial"], "1")}, ws,
                             timeout=bench.time_left() * 0.5)
        res = bench.train(f"gpus_{n}", one.replace(num_processes=n), ws, timeout=bench.time_left() * 0.8)
        if res.get("state") == "failed" and bench.time_left() > 150:
            bench.train(f"gpus_{n}_transformers", cfgs["transformers"].replace(num_processes=n), ws,
                        timeout=bench.time_left() * 0.8)
        r = bench.results["runs"]
        if r.get("gpus_1", {}).get("tokens_per_s") and r.get(f"gpus_{n}", {}).get("tokens_per_s"):
            bench.results["scaling"] = round(r[f"gpus_{n}"]["tokens_per_s"] / r["gpus_1"]["tokens_per_s"], 2)
        if r.get("gpus_1", {}).get("tokens_per_s") and r.get("tutorial_1gpu", {}).get("tokens_per_s"):
            bench.results["default_vs_tutorial"] = {
                "tokens_per_s_ratio": round(r["gpus_1"]["tokens_per_s"] / r["tutorial_1gpu"]["tokens_per_s"], 2),
                "median_ratio": round(r["gpus_1"]["tokens_per_s_median_after_step5"]
                                      / r["tutorial_1gpu"]["tokens_per_s_median_after_step5"], 2)
                if r["tutorial_1gpu"]["tokens_per_s_median_after_step5"] and r["gpus_1"]["tokens_per_s_median_after_step5"]
                else None}
        adapters = [r[k]["run"] for k in (f"gpus_{n}", f"gpus_{n}_transformers") if r.get(k, {}).get("adapter")]
        if adapters and bench.time_left() > 45:
            bench.export_and_generate(adapters[:1], ws, merge=False)
    bench.save()
    bench.log("done " + json.dumps({k: v for k, v in bench.results.items() if k in ("default_vs_tutorial", "scaling")}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
