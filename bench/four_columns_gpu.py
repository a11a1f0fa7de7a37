"""Compare's four columns on a GPU: one after another against one batched generation, on the shapes of real models.

    python -m bench.four_columns_gpu [--shapes llama3-8b smollm2-135m] [--repeats 5] [--max-new-tokens 64]

The GPU machine has no model weights (no network), so each shape is built with random weights (the same speed as
real ones), in bfloat16 on CUDA, with a random LoRA adapter (r=16, all seven projections) attached through
`Generator.attach_adapter` as a run's adapter is. Prompts are random words of a word-level tokenizer, one token each,
of the token lengths the four columns had on the sample shop with Gemma (base 123, fine-tuned 40, base + RAG 848,
fine-tuned + RAG 741: the RAG prompts carry three chunks). Random weights never emit the end token, so every answer
runs to --max-new-tokens: the batch has no row waiting for a longer one (its best case).

Per shape, medians of --repeats of the time until all four answers are complete:
- one after another: `Generator.stream` per column, each read to its end (the CPU way);
- one batch: `Generator.stream_many` with the four (base and adapter rows in one mixed-adapter batch);
- two batches: base + fine-tuned, then the two RAG columns (rows of similar length together, less padding).
Writes bench/results/four_columns_gpu_<date>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LENGTHS = (123, 40, 848, 741)  # base, fine-tuned, base + RAG, fine-tuned + RAG (Gemma, sample shop, first test row)
SHAPES = {
    "llama3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256),
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1000),  # a smoke test of this script on a CPU
}


def word_tokenizer(vocab: int):
    """A word-level tokenizer with `vocab` words w0..: one token per word, w1 the end token, w0 the padding."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(vocab)}, unk_token="w2"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="w1", pad_token="w0", unk_token="w2")


def build(shape: str, tmp: Path, device: str):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from workbench.answers.inference import Generator

    cfg = LlamaConfig(**SHAPES[shape], max_position_embeddings=8192, bos_token_id=3, eos_token_id=1, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    lora = LoraConfig(r=16, lora_alpha=16, init_lora_weights=False, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, lora)
    peft_model.save_pretrained(str(tmp / shape))  # the "default" adapter, saved as a run saves its adapter
    gen = Generator(peft_model.eval(), word_tokenizer(cfg.vocab_size), base_model=shape, instruct=False)
    gen.attach_adapter("run", tmp / shape)
    return gen


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shapes", nargs="+", default=list(SHAPES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--device", default="cuda")
    args = p.parse_args()
    import random

    import torch

    from workbench.answers.inference import GenerationConfig, StreamRequest

    settings = GenerationConfig(max_new_tokens=args.max_new_tokens, loop_tokens=0, stop_at_blank_line=False)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    out = {"date": dt.date.today().isoformat(), "torch": torch.__version__,
           "device": torch.cuda.get_device_name(0) if args.device == "cuda" else args.device,
           "lengths": LENGTHS, "settings": settings.to_dict(), "shapes": {}}
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            gen = build(shape, Path(tmp), args.device)
            vocab = SHAPES[shape]["vocab_size"]
            prompts = [" ".join(f"w{rng.randrange(4, vocab)}" for _ in range(n)) for n in LENGTHS]
            adapters = (None, "run", None, "run")
            reqs = [StreamRequest(pr, a, "alpaca") for pr, a in zip(prompts, adapters)]

            def drain(streams):
                for s in streams:
                    for _ in s:
                        pass
                return [s.result for s in streams]

            ways = {
                "one_after_another": lambda: [drain([gen.stream(r.prompt, adapter=r.adapter, settings=settings,
                                                                template=r.template)])[0] for r in reqs],
                "one_batch": lambda: drain(gen.stream_many(reqs, settings=settings)),
                "two_batches": lambda: drain(gen.stream_many(reqs[:2], settings=settings))
                + drain(gen.stream_many(reqs[2:], settings=settings)),
            }
            for fn in ways.values():  # warm-up: kernels, allocator
                fn()
            times: dict[str, list[float]] = {k: [] for k in ways}
            for _ in range(args.repeats):
                for name, fn in ways.items():
                    sync()
                    t0 = time.perf_counter()
                    res = fn()
                    sync()
                    times[name].append(time.perf_counter() - t0)
                    assert all(r.completion_tokens == args.max_new_tokens for r in res), [r.completion_tokens for r in res]
            med = {k: round(statistics.median(v), 3) for k, v in times.items()}
            out["shapes"][shape] = {"median_s": med, "times_s": times,
                                    "ratio_one_batch": round(med["one_batch"] / med["one_after_another"], 3),
                                    "ratio_two_batches": round(med["two_batches"] / med["one_after_another"], 3)}
            print(shape, med, out["shapes"][shape]["ratio_one_batch"], out["shapes"][shape]["ratio_two_batches"],
                  flush=True)
            gen = None  # the next shape gets the memory
            if args.device == "cuda":
                torch.cuda.empty_cache()
    import os

    name = f"four_columns_gpu_{out['date']}.json"
    dest = Path(os.environ.get("OUT") or ROOT / "bench" / "results") / name  # $OUT: the GPU machine's way back
    dest.write_text(json.dumps(out, indent=1), encoding="utf-8")
    print(json.dumps({k: v["median_s"] for k, v in out["shapes"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
