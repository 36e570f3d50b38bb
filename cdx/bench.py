"""Benchmarks: `python -m cdx.bench decode|floor|uncached|score|all [--repeats N] [--out FILE]`.

Every figure is a ratio of two timings taken side by side in one process, interleaved
(A, B, A, B, ...) and reduced by the median, because absolute times on shared machines drift.
Targets (embedded default pair, batch 8, 64 new tokens, CPU):
  two-model contrastive decoding   <= 1.8x single-model HF generate
  cached vs uncached reference     >= 10x at 128 new tokens
  shared-weights pair (one batch)  <= 1.1x single-model HF generate
  teacher-forced pair scoring      >= 0.45x single-model forward throughput
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

from cdx.decoding import ContrastiveDecoder, ProbDiff, score_rows
from cdx.decoding.prompts import BuiltinPrompts
from cdx.decoding.streams import left_pad
from cdx.models import ModelPair, ModelSpec, Side, load_pair


class PeakRSS:
    """Peak resident memory above the level at entry, sampled every 5 ms."""

    def __enter__(self):
        self.proc, self.base, self.peak, self._stop = psutil.Process(), psutil.Process().memory_info().rss, 0, False
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    def _watch(self):
        while not self._stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.mib = max(0, self.peak - self.base) / 2**20


@dataclass
class Timing:
    name: str
    seconds: list[float] = field(default_factory=list)
    mib: float = 0.0

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _measure(fns: dict, repeats: int) -> dict[str, Timing]:
    out = {k: Timing(k) for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():  # interleaved: drift hits every variant alike
            with PeakRSS() as mem:
                t = time.perf_counter()
                fn()
                out[name].seconds.append(time.perf_counter() - t)
            out[name].mib = max(out[name].mib, mem.mib)
    return out


def _pairs():
    shared = load_pair({"path": "embedded:smollm2-135m-instruct"},
                       {"path": "embedded:smollm2-135m-instruct",
                        "system_prompt": "You are a pirate captain. Always talk like a pirate."})
    s = shared.starting
    # Two distinct weight copies: the cost profile of any two-model pair (fine-tune, quantized, ...).
    two = ModelPair(s, Side(ModelSpec(path="copy"), copy.deepcopy(s.model), s.tokenizer))
    return shared, two


def _hf_generate(side: Side, prompts: list[str], n: int):
    ids, mask = left_pad([side.prompt_ids(p) for p in prompts], side.tokenizer.pad_token_id, "cpu")
    return lambda: side.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0,
                                       max_new_tokens=n, min_new_tokens=n, pad_token_id=side.tokenizer.pad_token_id)


def _cdx(pair, prompts: list[str], n: int):
    dec = ContrastiveDecoder(pair, ProbDiff(1, -1), strategy="sample", max_new_tokens=n, min_new_tokens=n,
                             batch_size=len(prompts), stop_at_eos=False)
    return lambda: dec.generate_batch(prompts)


@torch.inference_mode()
def _uncached(pair, prompts: list[str], n: int):
    """The upstream approach: both models re-run over the whole sequence at every step."""
    rule = ProbDiff(1, -1)
    pad = pair.tokenizer.pad_token_id

    def go():
        rows_s = [pair.starting.prompt_ids(p) for p in prompts]
        rows_c = [pair.comparison.prompt_ids(p) for p in prompts]
        for _ in range(n):
            ls = _last_logits(pair.starting.model, rows_s, pad)
            lc = _last_logits(pair.comparison.model, rows_c, pad)
            tok = torch.multinomial(torch.softmax(rule(torch.log_softmax(ls, -1), torch.log_softmax(lc, -1)), -1), 1)
            rows_s = [r + [t] for r, t in zip(rows_s, tok[:, 0].tolist())]
            rows_c = [r + [t] for r, t in zip(rows_c, tok[:, 0].tolist())]

    return go


def _last_logits(model, rows, pad):
    ids, mask = left_pad(rows, pad, "cpu")
    pos = (mask.cumsum(-1) - 1).clamp_min(0)
    return model(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].float()


def bench_decode(repeats: int) -> list[tuple]:
    shared, two = _pairs()
    prompts = BuiltinPrompts(limit=8).load()
    n = 64
    t = _measure({"hf_generate": _hf_generate(shared.starting, prompts, n), "cdx_two_models": _cdx(two, prompts, n),
                  "cdx_shared_weights": _cdx(shared, prompts, n)}, repeats)
    base = t["hf_generate"].median
    rows = [("single-model HF generate (batch 8, 64 tokens)", t["hf_generate"], 1.0, "reference"),
            ("cdx two-model contrastive decoding", t["cdx_two_models"], t["cdx_two_models"].median / base, "<= 1.8x"),
            ("cdx shared-weights pair (2 contexts, 1 batch)", t["cdx_shared_weights"],
             t["cdx_shared_weights"].median / base, "<= 1.1x")]
    return rows


def bench_floor(repeats: int) -> list[tuple]:
    """The floor of the one-batch design: a forward step over 2B rows against one over B rows."""
    from cdx.decoding.streams import Stream

    shared, _ = _pairs()
    prompts = BuiltinPrompts(limit=8).load()
    rows_s = [shared.starting.prompt_ids(p) for p in prompts]
    rows_c = [shared.comparison.prompt_ids(p) for p in prompts]

    def steps(rows):
        stream = Stream(shared.starting.model, shared.vocab_size, shared.tokenizer.pad_token_id)
        stream.prefill(rows)
        tok = torch.full((len(rows),), 42)
        return lambda: [stream.step(tok) for _ in range(64)]

    t = _measure({"b": steps(rows_s), "2b": steps(rows_s + rows_c)}, repeats)
    return [("64 bare forward steps, 8 rows (one context)", t["b"], 1.0, "reference"),
            ("64 bare forward steps, 16 rows (both contexts)", t["2b"], t["2b"].median / t["b"].median,
             "floor of the shared-weights ratio")]


def bench_uncached(repeats: int) -> list[tuple]:
    _, two = _pairs()
    prompts = BuiltinPrompts(limit=8).load()
    n_long = 128
    rows = []
    # the uncached reference is slow (minutes): one interleaved run of each is enough for a >= 10x check
    t2 = _measure({"cdx_128": _cdx(two, prompts, n_long), "uncached_128": _uncached(two, prompts, n_long)}, 1)
    rows.append(("uncached reference, 128 tokens (upstream approach)", t2["uncached_128"], None, "reference"))
    rows.append(("cdx two-model, 128 tokens: speed-up over uncached", t2["cdx_128"],
                 t2["uncached_128"].median / t2["cdx_128"].median, ">= 10x"))
    return rows


def bench_score(repeats: int) -> list[tuple]:
    shared, two = _pairs()
    tok = two.tokenizer
    prompts = BuiltinPrompts(limit=8).load()
    conts = [tok(" Arr, the sea is calm today and the crew is singing songs about treasure and old ships, "
                 "while the captain reads the map by candle light." * 2, add_special_tokens=False).input_ids[:64]] * 8
    rows_s = [two.starting.prompt_ids(p) for p in prompts]
    ids, mask = left_pad([r + c for r, c in zip(rows_s, conts)], tok.pad_token_id, "cpu")

    @torch.inference_mode()
    def single():
        two.starting.model(input_ids=ids, attention_mask=mask).logits.float()

    t = _measure({"single_forward": single,
                  "pair_scoring": lambda: score_rows(two, rows_s, rows_s, conts, chunk=32),
                  "pair_scoring_shared": lambda: score_rows(shared, rows_s,
                                                            [shared.comparison.prompt_ids(p) for p in prompts], conts)},
                 repeats)
    base = t["single_forward"].median
    return [("single-model forward, full logits (8 x ~100 tokens)", t["single_forward"], 1.0, "reference"),
            ("teacher-forced pair scoring + all metrics: throughput", t["pair_scoring"],
             base / t["pair_scoring"].median, ">= 0.45x"),
            ("same, shared-weights pair (one batch)", t["pair_scoring_shared"],
             base / t["pair_scoring_shared"].median, "(info)")]


def to_markdown(rows: list[tuple], title: str) -> str:
    lines = [f"### {title}", "", "| measurement | median s | runs | peak extra RSS MiB | ratio | target |",
             "|---|---|---|---|---|---|"]
    for name, timing, ratio, target in rows:
        r = "" if ratio is None else f"{ratio:.2f}x"
        lines.append(f"| {name} | {timing.median:.3f} | {len(timing.seconds)} | {timing.mib:.0f} | {r} | {target} |")
    return "\n".join(lines) + "\n"


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["decode", "floor", "uncached", "score", "all"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="append the tables to this Markdown file")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    parts = [f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d %H:%M')}.\n"]
    print(parts[0], flush=True)
    if args.what in ("score", "all"):
        parts.append(to_markdown(bench_score(args.repeats), "Teacher-forced scoring (embedded SmolLM2-135M pair)"))
        print(parts[-1], flush=True)
    if args.what in ("decode", "all"):
        parts.append(to_markdown(bench_decode(args.repeats), "Decoding (embedded SmolLM2-135M pair)"))
        print(parts[-1], flush=True)
    if args.what in ("floor", "all"):
        parts.append(to_markdown(bench_floor(args.repeats), "Forward cost of one batch of both contexts"))
        print(parts[-1], flush=True)
    if args.what in ("uncached", "all"):
        parts.append(to_markdown(bench_uncached(1), "Cached vs uncached decoding (embedded pair, 128 tokens)"))
        print(parts[-1], flush=True)
    text = "\n".join(parts)
    if args.out:
        with Path(args.out).open("a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
