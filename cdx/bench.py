"""Benchmarks: `python -m cdx.bench score|decode|adapter|uncached|analyze|shared|all [--repeats N] [--out FILE]`.

Every figure is a ratio of two timings taken side by side in one process, interleaved
(A, B, A, B, ...): the median over repeats of A's time over B's in the same repeat, because
absolute times on shared machines drift (a paired ratio cancels drift slower than one repeat).
Each table carries the machine facts that decide its figures (CPU, cores, torch threads, the
parallel mode chosen, torch and BLAS versions, load average when it started).

Targets (embedded default pair, batch 8, 64 new tokens, CPU):
  two-model decoding vs its floor          <= 1.10x (floor: both models' bare cached steps, best arrangement)
  two-model decoding vs HF generate        reported, beside the machine's thread-scaling factor
  shared-weights pair vs its floor         <= 1.05x (floor: bare steps over 2B rows)
  adapter pair: model memory vs one model  <= 1.15x; time vs two separate models <= 1.0x
  teacher-forced pair scoring              >= 0.5x single-model forward throughput
  cached vs uncached reference             >= 10x at 128 new tokens
  task=analyze vs its generation           <= 1.25x
  shared machines (`shared`, not in `all`)  k jobs at once >= 0.9x the throughput of one after another;
                                            beside 2 CPU-bound processes <= 2.5x idle (analyze: <= 3x)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import torch

from cdx.decoding import ContrastiveDecoder, ProbDiff, score_rows
from cdx.decoding.prompts import BuiltinPrompts
from cdx.decoding.streams import PairStreams, left_pad, parallel_mode, side_worker, total_threads
from cdx.models import ModelPair, ModelSpec, Side, load_pair
from cdx.models.adapters import merged_copy, unique_param_bytes
from cdx.resources import conf_dir

EMBEDDED = "embedded:smollm2-135m-instruct"
PERSONA = "You are a pirate captain. Always talk like a pirate."


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


class Ratio(float):
    """A paired ratio (its value, the median) that also keeps its lowest and highest repeat."""

    lo: float
    hi: float


def ratio(a: Timing, b: Timing) -> Ratio:
    """Median over repeats of a's time / b's time in the same repeat (`_measure` interleaves them).

    The range over repeats goes into the table beside it: on a shared machine one repeat can move
    a ratio by several points, and a reader should see how far.
    """
    each = [x / y for x, y in zip(a.seconds, b.seconds, strict=True)]
    out = Ratio(statistics.median(each))
    out.lo, out.hi = min(each), max(each)
    return out


@dataclass
class Row:
    """One table row: `ratio` is a number (printed as 1.23x) or None; `target` is free text."""

    name: str
    timing: Timing | None
    ratio: float | None
    target: str


@dataclass
class Setup:
    """What a benchmark runs on: the model path, batch, number of new tokens."""

    model: str = EMBEDDED
    batch: int = 8
    tokens: int = 64
    repeats: int = 3

    def prompts(self) -> list[str]:
        return BuiltinPrompts(limit=self.batch).load()


def _measure(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, Timing]:
    out = {k: Timing(k) for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():  # interleaved: drift hits every variant alike
            with PeakRSS() as mem:
                t = time.perf_counter()
                fn()
                out[name].seconds.append(time.perf_counter() - t)
            out[name].mib = max(out[name].mib, mem.mib)
    return out


# ---- the machine --------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        found = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        if found:
            return found.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas() -> str:
    """The BLAS torch was built with, e.g. `mkl (oneAPI MKL 2024.2)` or `openblas`."""
    cfg = torch.__config__.show()
    info = re.search(r"BLAS_INFO=(\w+)", cfg)
    version = re.search(r"Math Kernel Library Version ([\d.]+)", cfg)
    name = info.group(1) if info else "unknown"
    return f"{name} {version.group(1)}" if (version and name == "mkl") else name


def machine(mode: str | None = None) -> str:
    """One line of the facts that decide the figures."""
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    bits = [cpu_model(), f"{psutil.cpu_count(logical=False)} physical / {psutil.cpu_count()} logical cores",
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB", f"torch {torch.__version__}",
            f"BLAS {blas()}", f"{total_threads()} torch threads"]
    if mode:
        bits.append(f"parallel mode {mode}")
    bits += [f"Python {platform.python_version()}", f"load average {load}"]
    return "; ".join(bits)


# ---- pairs --------------------------------------------------------------------------------------


def _pairs(setup: Setup) -> tuple[ModelPair, ModelPair]:
    """(shared-weights persona pair, two-model pair with two distinct copies of the weights)."""
    spec = {"path": setup.model} if setup.model != "tiny-random" else {"path": "tiny-random", "seed": 0}
    shared = load_pair(spec, {**spec, "system_prompt": PERSONA})
    s = shared.starting
    # Two distinct weight copies: the cost profile of any two-model pair (fine-tune, quantized, ...).
    two = ModelPair(s, Side(ModelSpec(path="copy"), copy.deepcopy(s.model), s.tokenizer))
    return shared, two


def random_lora(model, folder: Path, rank: int = 16, seed: int = 0) -> Path:
    """Save a random (non-zero) LoRA over every linear layer of `model`'s architecture to `folder`."""
    from peft import LoraConfig, get_peft_model

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=rank, lora_alpha=2 * rank,
                                                                     target_modules=targets, init_lora_weights=False))
        peft_model.save_pretrained(str(folder))
    return folder


# ---- the runs being timed -----------------------------------------------------------------------


def _hf_generate(side: Side, prompts: list[str], n: int, threads: int | None = None):
    """Single-model HF generate; with `threads`, on a worker thread holding that many intra-op threads."""
    ids, mask = left_pad([side.prompt_ids(p) for p in prompts], side.tokenizer.pad_token_id, "cpu")

    def go():
        return side.model.generate(input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0,
                                   max_new_tokens=n, min_new_tokens=n, pad_token_id=side.tokenizer.pad_token_id)

    return go if threads is None else (lambda: side_worker("bench", threads).submit(go).result())


def _cdx(pair, prompts: list[str], n: int, parallel: bool | str = "auto", adapter_batch: bool | None = None,
         sampler: str = "inverse_cdf"):
    dec = ContrastiveDecoder(pair, ProbDiff(1, -1), strategy="sample", max_new_tokens=n, min_new_tokens=n,
                             batch_size=len(prompts), stop_at_eos=False, parallel=parallel,
                             adapter_batch=adapter_batch, sampler=sampler)
    return lambda: dec.generate_batch(prompts)


def _floor(pair, prompts: list[str], n: int, parallel: bool):
    """Both models' bare cached forward steps for the same prompts and n tokens: prefill, then n steps.

    No combination, sampling or metrics: what two-model decoding cannot go below with this
    arrangement of threads. Each step waits for both sides, as decoding must.
    """
    rows_s = [pair.starting.prompt_ids(p) for p in prompts]
    rows_c = [pair.comparison.prompt_ids(p) for p in prompts]
    tok = torch.full((len(prompts),), 42)

    def go():
        streams = PairStreams(pair, parallel=parallel)
        streams.prefill(rows_s, rows_c)
        for _ in range(n - 1):  # n tokens need n-1 steps after the prefill (cdx does the same)
            streams.step(tok)

    return go


def bench_decode(setup: Setup) -> tuple[list[Row], str]:
    shared, two = _pairs(setup)
    prompts, n = setup.prompts(), setup.tokens
    t = _measure({
        "hf": _hf_generate(shared.starting, prompts, n),
        "hf_1": _hf_generate(shared.starting, prompts, n, threads=1),
        "cdx_two": _cdx(two, prompts, n),
        "floor_par": _floor(two, prompts, n, parallel=True),
        "floor_seq": _floor(two, prompts, n, parallel=False),
        "cdx_shared": _cdx(shared, prompts, n),
        "floor_shared": _floor(shared, prompts, n, parallel=False),
        "cdx_shared_hf": _cdx(shared, prompts, n, sampler="multinomial"),
    }, setup.repeats)
    hf = t["hf"]
    floor = min(t["floor_par"], t["floor_seq"], key=lambda x: x.median)  # the best arrangement
    scaling = ratio(t["hf_1"], hf)
    best = "side by side" if floor is t["floor_par"] else "one after the other"
    rows = [
        Row(f"single-model HF generate, {total_threads()} threads (batch {setup.batch}, {n} tokens)", t["hf"], 1.0,
            "reference"),
        Row("single-model HF generate, 1 thread: **thread-scaling factor** (1-thread / all-thread time)", t["hf_1"],
            scaling, "(machine)"),
        Row("floor: both models' bare cached steps, side by side (one thread set each)", t["floor_par"],
            ratio(t["floor_par"], hf), "(vs HF generate)"),
        Row("floor: both models' bare cached steps, one after the other (all threads)", t["floor_seq"],
            ratio(t["floor_seq"], hf), "(vs HF generate)"),
        Row(f"cdx two-model contrastive decoding vs HF generate (thread scaling {scaling:.2f}x)", t["cdx_two"],
            ratio(t["cdx_two"], hf), "reported"),
        Row(f"cdx two-model: **overhead over the floor** ({best})", t["cdx_two"], ratio(t["cdx_two"], floor),
            "<= 1.10x"),
        Row("floor: bare cached steps over 2B rows (shared weights, one batch)", t["floor_shared"],
            ratio(t["floor_shared"], hf), "(vs HF generate)"),
        Row("cdx shared-weights pair: overhead over its floor", t["cdx_shared"],
            ratio(t["cdx_shared"], t["floor_shared"]), "<= 1.05x"),
        Row("cdx shared-weights pair vs HF generate", t["cdx_shared"], ratio(t["cdx_shared"], hf),
            "<= 1.15x on a GPU (info on CPU)"),
        Row("same, sampler=multinomial (HF generate's own draws, V exponentials a row): over the floor",
            t["cdx_shared_hf"], ratio(t["cdx_shared_hf"], t["floor_shared"]), "(info)"),
    ]
    return rows, machine(parallel_mode(two))


def bench_adapter(setup: Setup) -> tuple[list[Row], str]:
    """Base vs base + a random LoRA (all linear layers, rank 16) on one set of weights, against two models."""
    shared, _ = _pairs(setup)
    base = shared.starting
    prompts, n = setup.prompts(), setup.tokens
    with tempfile.TemporaryDirectory() as tmp:
        base_spec = dict(path=setup.model) if setup.model != "tiny-random" else dict(path="tiny-random", seed=0)
        folder = random_lora(base.model, Path(tmp) / "lora")
        with PeakRSS() as load_mem:
            pair = load_pair(base_spec, {**base_spec, "adapter": str(folder)})
        merged = merged_copy(pair.comparison.model)  # two separate models: base + merged fine-tune
        separate = ModelPair(pair.starting, Side(ModelSpec(path="merged"), merged, pair.tokenizer))
        one = unique_param_bytes(pair.starting.model)
        t = _measure({"separate": _cdx(separate, prompts, n), "adapter": _cdx(pair, prompts, n),
                      "two_pass": _cdx(pair, prompts, n, adapter_batch=False)}, setup.repeats)
    ratio_mem = unique_param_bytes(pair.starting.model, pair.comparison.model) / one
    rows = [
        Row("model memory of the pair (distinct weight bytes) vs one model", None, ratio_mem, "<= 1.15x"),
        Row(f"resident memory added by loading the adapter side: {load_mem.mib:.0f} MiB "
            f"(one model is {one / 2**20:.0f} MiB)", None, load_mem.mib * 2**20 / one, "(info)"),
        Row(f"cdx two separate models (base + merged copy), batch {setup.batch}, {n} tokens", t["separate"], 1.0,
            "reference"),
        Row("cdx adapter pair over one set of weights: one batch, adapter per row (default)", t["adapter"],
            ratio(t["adapter"], t["separate"]), "<= 1.0x"),
        Row(f"same, two passes over the shared base ({parallel_mode(pair, adapter_batch=False)})", t["two_pass"],
            ratio(t["two_pass"], t["separate"]), "(info)"),
    ]
    return rows, machine(parallel_mode(pair))


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


def bench_uncached(setup: Setup) -> tuple[list[Row], str]:
    _, two = _pairs(setup)
    prompts, n = setup.prompts(), 2 * setup.tokens
    # the uncached reference is slow (minutes): one interleaved run of each is enough for a >= 10x check
    t = _measure({"cdx": _cdx(two, prompts, n), "uncached": _uncached(two, prompts, n)}, 1)
    return [Row(f"uncached reference, {n} tokens (upstream approach)", t["uncached"], None, "reference"),
            Row(f"cdx two-model, {n} tokens: speed-up over uncached", t["cdx"],
                ratio(t["uncached"], t["cdx"]), ">= 10x")], machine(parallel_mode(two))


def bench_score(setup: Setup) -> tuple[list[Row], str]:
    shared, two = _pairs(setup)
    tok = two.tokenizer
    prompts = setup.prompts()
    text = (" Arr, the sea is calm today and the crew is singing songs about treasure and old ships, "
            "while the captain reads the map by candle light.") * 2
    conts = [tok(text, add_special_tokens=False).input_ids[: setup.tokens]] * len(prompts)
    rows_s = [two.starting.prompt_ids(p) for p in prompts]
    ids, mask = left_pad([r + c for r, c in zip(rows_s, conts)], tok.pad_token_id, "cpu")

    @torch.inference_mode()
    def single():
        two.starting.model(input_ids=ids, attention_mask=mask).logits.float()

    rows_shared_c = [shared.comparison.prompt_ids(p) for p in prompts]
    t = _measure({"single": single,
                  "pair": lambda: score_rows(two, rows_s, rows_s, conts, chunk=32),
                  "shared": lambda: score_rows(shared, rows_s, rows_shared_c, conts)}, setup.repeats)
    return [Row(f"single-model forward, full logits ({len(prompts)} x ~{ids.shape[1]} tokens)", t["single"], 1.0,
                "reference"),
            Row("teacher-forced pair scoring + all metrics: throughput", t["pair"], ratio(t["single"], t["pair"]),
                ">= 0.5x"),
            Row("same, shared-weights pair (one batch)", t["shared"], ratio(t["single"], t["shared"]), "(info)")], \
        machine(parallel_mode(two))


ANALYZE_OVERRIDES = ["task=analyze", "prompts.limit=32", "analysis.sample.max_new_tokens=32", "report.print_top=false",
                     "analysis.report.print_table=false"]


def _compose(overrides: list[str], out: Path):
    """The CLI's composed config for `overrides`, writing into `out` (Hydra's compose API, as tests do)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        cfg.output_dir = str(out)
        del cfg["hydra"]
    return cfg


def _analysis_generation(cfg):
    """The generation task=analyze needs, alone: every discovery mode on the discovery prompts and
    the plain samples of both models on the validation prompts, nothing written or scored."""
    from hydra.utils import instantiate

    from cdx.analysis.sampling import PLAIN, SampleSettings, sample_pair, split_prompts

    a = cfg.analysis
    prompts = list(dict.fromkeys(instantiate(cfg.prompts).load()))
    disc, val = split_prompts(prompts, float(a.sample.discovery_fraction), int(cfg.seed))
    keys = set(SampleSettings.model_fields)
    s_disc = SampleSettings.of(**{k: v for k, v in a.sample.items() if k in keys})
    s_val = SampleSettings.of(**{k: v for k, v in a.validate.sampling.items() if k in keys})

    def go():
        pair = instantiate(cfg.model)  # from the process's model cache after the first call
        sample_pair(pair, [prompts[i] for i in disc], s_disc, tuple(a.sample.modes), disc, "discovery")
        sample_pair(pair, [prompts[i] for i in val], s_val, PLAIN, val, "validation")

    return go


def bench_analyze(setup: Setup) -> tuple[list[Row], str]:
    """Wall time of task=analyze (small budget) against the time of the generation it needs."""
    try:
        from cdx.tasks import analyze as task
    except ImportError:
        return [Row("task=analyze is not in this checkout (cdx/tasks/analyze.py)", None, None,
                    "<= 1.25x (not measured)")], machine()
    import json

    overrides = ANALYZE_OVERRIDES + (["model=tiny_random", "prompts.limit=16"] if setup.model == "tiny-random" else [])
    with tempfile.TemporaryDirectory() as tmp:
        runs = iter(range(10**6))
        last: dict = {}
        own: list[float] = []

        def analyze():
            out = Path(tmp) / f"run{next(runs)}"
            task.run(_compose(overrides, out))
            summary = json.loads((out / "analysis.json").read_text())
            last.update(summary.get("timings_s", {}))
            if summary.get("cost_ratio") is not None:  # the run's own account: its sampling stages inside it
                own.append(summary["cost_ratio"])

        generation = _analysis_generation(_compose(overrides, Path(tmp) / "probe"))
        generation()  # warm-up of both: model, GGUF cache and embedder loads are not what is compared
        analyze()
        t = _measure({"generation": generation, "analyze": analyze}, setup.repeats)
    analyze_ratio = ratio(t["analyze"], t["generation"])
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in last.items() if v is not None)
    rows = [Row(f"generation task=analyze needs, alone ({' '.join(overrides[1:])})", t["generation"], 1.0,
                "reference"),
            Row(f"task=analyze, whole run (stages: {stages})", t["analyze"], analyze_ratio, "<= 1.25x")]
    if own:
        rows.append(Row("the run's own account: whole analysis / its sampling stages (analysis.json cost_ratio, "
                        "median)", None, statistics.median(own), "(cross-check)"))
    return rows, machine()


def to_markdown(rows: list[Row], title: str, machine_line: str) -> str:
    lines = [f"### {title}", "", f"Machine: {machine_line}.", "",
             "| measurement | median s | runs | peak extra RSS MiB | ratio (range over repeats) | target |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        if isinstance(r.ratio, Ratio) and r.timing is not None and len(r.timing.seconds) > 1:
            ratio += f" ({r.ratio.lo:.2f}-{r.ratio.hi:.2f})"
        if r.timing is None:
            lines.append(f"| {r.name} |  |  |  | {ratio} | {r.target} |")
        else:
            lines.append(f"| {r.name} | {r.timing.median:.3f} | {len(r.timing.seconds)} | {r.timing.mib:.0f} | "
                         f"{ratio} | {r.target} |")
    return "\n".join(lines) + "\n"


def bench_shared(setup: Setup) -> tuple[list[Row], str]:
    """Shared machines (whole CLI jobs, minutes): cdx.bench_shared, which builds on this module."""
    from cdx.bench_shared import bench_shared as shared  # imports cdx.bench: importing it above would cycle

    return shared(setup)


def bench_topk(setup: Setup) -> tuple[list[Row], str]:
    """decoding.record_top_k: decoding plus the records' top_next field, against the same without it."""
    _, two = _pairs(setup)
    prompts, n, tok = setup.prompts(), setup.tokens, two.tokenizer
    sizes: dict[int, float] = {}

    def run(k: int):
        dec = ContrastiveDecoder(two, ProbDiff(1, -1), max_new_tokens=n, min_new_tokens=n, batch_size=len(prompts),
                                 stop_at_eos=False, record_top_k=k)

        def go():
            fields = [g.top_next_fields(tok) for g in dec.generate_batch(prompts)]  # as the records hold them
            sizes[k] = sum(len(json.dumps(f)) for f in fields) / (len(fields) * n)
        return go

    t = _measure({f"k{k}": run(k) for k in (0, 5, 20)}, setup.repeats)
    rows = [Row(f"two-model decoding, record_top_k=0 (batch {setup.batch}, {n} tokens)", t["k0"], 1.0, "reference")]
    rows += [Row(f"record_top_k={k}: decoding + the records' top_next ({sizes[k]:.0f} bytes a token on disk)",
                 t[f"k{k}"], ratio(t[f"k{k}"], t["k0"]), "(cost; info)") for k in (5, 20)]
    return rows, machine(parallel_mode(two))


SECTIONS = {
    "score": (bench_score, "Teacher-forced scoring"),
    "decode": (bench_decode, "Decoding: cdx against its floor, HF generate and the thread scaling"),
    "adapter": (bench_adapter, "Adapter pair on one set of weights"),
    "uncached": (bench_uncached, "Cached vs uncached decoding"),
    "analyze": (bench_analyze, "task=analyze against its generation"),
    "shared": (bench_shared, "Shared machines: concurrent jobs and CPU-bound neighbours"),
    "topk": (bench_topk, "Recording both models' top-k next tokens (decoding.record_top_k)"),
}
ALL = ("score", "decode", "adapter", "analyze", "uncached")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=[*SECTIONS, "floor", "all"], help="floor is an alias of decode")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--model", default=EMBEDDED, help="model path (tiny-random for a quick check of the script)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--out", default=None, help="append the tables to this Markdown file")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    setup = Setup(args.model, args.batch, args.tokens, args.repeats)
    what = {"all": ALL, "floor": ("decode",)}.get(args.what, (args.what,))
    parts = [f"Date: {time.strftime('%Y-%m-%d %H:%M')}. Model {setup.model}, batch {setup.batch}, "
             f"{setup.tokens} new tokens, {setup.repeats} interleaved repeats (seconds: median; ratios: median of "
             "the ratios within each repeat).\n"]
    print(parts[0], flush=True)
    if args.out:
        with Path(args.out).open("a") as f:
            f.write("\n" + parts[0])
    for name in what:
        fn, title = SECTIONS[name]
        rows, machine_line = fn(setup)
        parts.append(to_markdown(rows, f"{title} ({Path(setup.model).name})", machine_line))
        print(parts[-1], flush=True)
        if args.out:  # appended section by section: a long run that dies keeps what it measured
            with Path(args.out).open("a") as f:
                f.write("\n" + parts[-1])
    print(f"bench {args.what}: {len(parts) - 1} table(s) printed" + (f", appended to {args.out}" if args.out else ""))


if __name__ == "__main__":
    main()
