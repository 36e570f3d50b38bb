"""GPU figures with random-initialised models of Llama-3-8B shape in bf16 (nothing is downloaded).

    python -m cdx.bench_gpu                      # on a CUDA machine: 8B shape, bf16, batch 1, 8, 64
    python -m cdx.bench_gpu --shape tiny --device cpu --dtype float32 --batches 1,2 --tokens 4   # logic check

For each batch size it measures tokens/s of single-model HF `generate`, cdx two-model decoding (two
distinct random models), the shared-weights pair (one model, two system prompts, one batch), the
adapter pair (base against base + a random rank-16 LoRA over every linear layer, on one copy of the
base weights; both as one batch with the adapter enabled per row and as two passes over the shared
base) and the two-model floor (both models' bare cached steps). Each row gives the weights the pair
holds, the peak working memory above them, and the fraction of the memory-bandwidth floor reached:
a decode step must read every weight it uses once, so `bytes read per step * steps / measured copy
bandwidth` is the least time the run could take; fraction = that floor / measured time. It also
loads a random model through cdx's bitsandbytes 4-bit path (`ModelSpec(quantization="4bit")`),
where bitsandbytes and CUDA are available, and decodes a 4-bit pair. Prints Markdown tables and a
one-line summary.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cdx.decoding import ContrastiveDecoder, ProbDiff
from cdx.decoding.streams import PairStreams, left_pad
from cdx.models import ModelPair, ModelSpec, Side

SHAPES: dict[str, dict[str, Any]] = {
    # Llama-3-8B
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192),
    # Llama-3.2-1B (the default shape of the bitsandbytes check: it writes the model to disk first)
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192),
    # a few MB: checks the script's logic on the CPU in seconds
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=1024, max_position_embeddings=512),
}
PERSONA = "You are a pirate captain. Always talk like a pirate."
PROMPTS = ["What is the best way to learn a language?", "Tell me about the history of Rome.",
           "How do airplanes stay in the air?", "Write a short poem about autumn.",
           "What should I cook tonight?", "Explain how vaccines work.", "Why is the sky blue?",
           "Give me three tips for a job interview."]


@dataclass
class Result:
    name: str
    batch: int
    seconds: float
    tokens: int
    peak_gib: float
    """Working memory: peak allocation above the resident weights during the run."""
    bytes_per_step: int
    bandwidth: float
    weights: int = 0
    """Distinct weight bytes the measured pair holds (shared tensors once)."""

    @property
    def tokens_per_s(self) -> float:
        return self.batch * self.tokens / self.seconds

    @property
    def floor_fraction(self) -> float:
        return self.bytes_per_step * self.tokens / self.bandwidth / self.seconds


def random_model(shape: str, dtype: torch.dtype, device: str, seed: int):
    """A Llama of `shape` with random weights drawn from `seed`, built directly on `device`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from cdx.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()  # ids < 320 fit every shape's vocabulary
    config = LlamaConfig(**SHAPES[shape], bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=False)
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.startswith("cuda") else []):
        torch.manual_seed(seed)
        with torch.device(device):
            model = LlamaForCausalLM._from_config(config, dtype=dtype)
    return model.eval().requires_grad_(False)


def weight_bytes(*models) -> int:
    from cdx.models.adapters import unique_param_bytes

    return unique_param_bytes(*models)


def copy_bandwidth(device: str, gib: float = 2.0) -> float:
    """Measured bytes/s of a device-to-device copy (read + write), best of 5: the attainable bandwidth."""
    n = int(gib * 2**30) // 4
    a = torch.empty(n, dtype=torch.float32, device=device)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(5):
        _sync(device)
        t = time.perf_counter()
        b.copy_(a)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    del a, b
    return 2 * n * 4 / best


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_reset(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        _RESET_AT[0] = torch.cuda.memory_allocated()


def _peak_gib(device: str) -> float:
    """Peak allocated memory above what was allocated at the reset (KV caches, activations, logits)."""
    if not device.startswith("cuda"):
        return float("nan")
    return (torch.cuda.max_memory_allocated() - _RESET_AT[0]) / 2**30


_RESET_AT = [0]


def timed(fn: Callable[[], object], device: str, repeats: int) -> tuple[float, float]:
    """(median seconds, peak GiB) after one warm-up call."""
    fn()
    _sync(device)
    _peak_reset(device)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times), _peak_gib(device)


def _side(model, tok, system_prompt: str | None = None, name: str = "random") -> Side:
    return Side(ModelSpec(path=name, system_prompt=system_prompt), model, tok)


def hf_generate(side: Side, prompts: list[str], n: int):
    ids, mask = left_pad([side.prompt_ids(p) for p in prompts], side.tokenizer.pad_token_id, side.model.device)

    @torch.inference_mode()
    def go():
        side.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0,
                            max_new_tokens=n, min_new_tokens=n, pad_token_id=side.tokenizer.pad_token_id)

    return go


def cdx_decode(pair: ModelPair, prompts: list[str], n: int, **options):
    dec = ContrastiveDecoder(pair, ProbDiff(1, -1), strategy="sample", max_new_tokens=n, min_new_tokens=n,
                             batch_size=len(prompts), stop_at_eos=False, **options)
    return lambda: dec.generate_batch(prompts)


def floor_steps(pair: ModelPair, prompts: list[str], n: int):
    rows_s = [pair.starting.prompt_ids(p) for p in prompts]
    rows_c = [pair.comparison.prompt_ids(p) for p in prompts]
    tok = torch.full((len(prompts),), 42, device=next(pair.starting.model.parameters()).device)

    def go():
        streams = PairStreams(pair)
        streams.prefill(rows_s, rows_c)
        for _ in range(n - 1):
            streams.step(tok)

    return go


def random_lora_view(base, seed: int = 0, rank: int = 16):
    """base + a random LoRA over every linear layer, as a view over the base's tensors (cdx's adapter path)."""
    from cdx.bench import random_lora
    from cdx.models.adapters import adapter_view

    folder = Path(tempfile.mkdtemp(prefix="cdx-lora-"))
    random_lora(base, folder, rank=rank, seed=seed)
    return adapter_view(base, str(folder))


def run_batches(args, tok, device: str, dtype: torch.dtype, bandwidth: float) -> list[Result]:
    base = random_model(args.shape, dtype, device, seed=0)
    other = random_model(args.shape, dtype, device, seed=1)
    view = random_lora_view(base)
    one = weight_bytes(base)
    lora = weight_bytes(base, view) - one
    two = ModelPair(_side(base, tok), _side(other, tok, name="random-1"))
    adapter = ModelPair(_side(base, tok), _side(view, tok, name="lora"))
    runs = [  # (name, pair, weight bytes read per step, decoder options)
        ("cdx two-model", two, 2 * one, {}),
        ("cdx shared-weights (2 contexts, 1 batch)", ModelPair(_side(base, tok), _side(base, tok, PERSONA)), one, {}),
        ("cdx adapter pair, one batch (per-row adapter)", adapter, one + lora, {"adapter_batch": True}),
        ("cdx adapter pair, two passes over one base", adapter, 2 * one + lora, {"adapter_batch": False}),
    ]
    out = []
    for b in args.batches:
        prompts = (PROMPTS * (b // len(PROMPTS) + 1))[:b]
        n = args.tokens
        s, peak = timed(hf_generate(_side(base, tok), prompts, n), device, args.repeats)
        out.append(Result("HF generate, one model", b, s, n, peak, one, bandwidth, one))
        s, peak = timed(floor_steps(two, prompts, n), device, args.repeats)
        out.append(Result("two-model floor (bare cached steps)", b, s, n, peak, 2 * one, bandwidth, 2 * one))
        for name, pair, step_bytes, options in runs:
            s, peak = timed(cdx_decode(pair, prompts, n, **options), device, args.repeats)
            held = weight_bytes(pair.starting.model, pair.comparison.model)
            out.append(Result(name, b, s, n, peak, step_bytes, bandwidth, held))
        print(table([r for r in out if r.batch == b], f"batch {b}"), flush=True)
    del base, other, view, runs, two, adapter
    gc.collect()
    return out


def bnb_rows(args, tok, device: str) -> list[str]:
    """Load a random model through cdx's bitsandbytes 4-bit path and decode a 4-bit pair."""
    if not device.startswith("cuda"):
        return ["| bitsandbytes 4-bit | skipped: needs CUDA |"]
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return ["| bitsandbytes 4-bit | skipped: bitsandbytes is not installed (pip install bitsandbytes) |"]
    from cdx.models import load_model
    from cdx.models.loading import clear_cache

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = random_model(args.bnb_shape, torch.bfloat16, "cpu", seed=2)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        bf16 = weight_bytes(model)
        del model
        gc.collect()
        torch.cuda.empty_cache()
        _peak_reset(device)
        t = time.perf_counter()
        q, _ = load_model(ModelSpec(path=tmp, quantization="4bit", device="cuda", dtype="bfloat16"))
        load_s = time.perf_counter() - t
        mem = torch.cuda.max_memory_allocated() / 2**30
        rows.append(f"| {args.bnb_shape} shape, 4-bit nf4 load through cdx | {load_s:.1f} s | peak {mem:.2f} GiB "
                    f"(bf16 weights would be {bf16 / 2**30:.2f} GiB) |")
        pair = ModelPair(_side(q, tok), _side(q, tok, PERSONA))
        prompts = PROMPTS[:8]
        s, peak = timed(cdx_decode(pair, prompts, args.tokens), device, 1)
        rows.append(f"| 4-bit shared-weights pair, batch 8, {args.tokens} tokens | {8 * args.tokens / s:.1f} tokens/s | "
                    f"peak {peak:.2f} GiB |")
        del q, pair
        clear_cache()
    return rows


def table(results: list[Result], title: str) -> str:
    lines = [f"#### {title}", "", "| measurement | batch | tokens/s | median s | weights held GiB | "
             "peak working GiB | weight bytes/step GiB | bandwidth floor reached |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        peak = "n/a" if r.peak_gib != r.peak_gib else f"{r.peak_gib:.2f}"  # NaN off CUDA
        lines.append(f"| {r.name} | {r.batch} | {r.tokens_per_s:.1f} | {r.seconds:.3f} | {r.weights / 2**30:.2f} | {peak} | "
                     f"{r.bytes_per_step / 2**30:.2f} | {100 * r.floor_fraction:.0f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> list[Result]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="8b")
    ap.add_argument("--bnb-shape", choices=sorted(SHAPES), default="1b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", choices=["bfloat16", "float16", "float32"], default="bfloat16")
    ap.add_argument("--batches", default="1,8,64", help="comma-separated batch sizes")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=None, help="append the tables to this Markdown file")
    args = ap.parse_args(argv)
    args.batches = [int(x) for x in args.batches.split(",")]
    device, dtype = args.device, getattr(torch, args.dtype)
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"--device {device} but CUDA is not available here; use --shape tiny --device cpu to "
                         "check the script's logic")
    from cdx.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    bandwidth = copy_bandwidth(device, 2.0 if device.startswith("cuda") else 0.25)
    head = (f"### GPU figures ({args.shape} shape, {args.dtype}, {args.tokens} new tokens)\n\n"
            f"Device: {name}; torch {torch.__version__}; measured copy bandwidth {bandwidth / 1e9:.0f} GB/s.\n")
    print(head, flush=True)
    t0 = time.perf_counter()
    results = run_batches(args, tok, device, dtype, bandwidth)
    bnb = bnb_rows(args, tok, device)
    text = head + "\n" + table(results, "all batches") + "\n#### bitsandbytes\n\n| check | result | memory |\n" \
        "|---|---|---|\n" + "\n".join(bnb) + "\n"
    print("\n".join(["#### bitsandbytes", "", *bnb]), flush=True)
    if args.out:
        with Path(args.out).open("a") as f:
            f.write("\n" + text)
    two = [r for r in results if r.name == "cdx two-model" and r.batch == 8]
    frac = f"{100 * two[0].floor_fraction:.0f}%" if two else "n/a"
    print(f"bench_gpu: {len(results)} rows in {time.perf_counter() - t0:.0f} s; two-model at batch 8 reached {frac} "
          "of the bandwidth floor (target >= 60%)")
    return results


if __name__ == "__main__":
    main()
