"""App benchmarks (issue 22): `python -m cdx.bench_app sbs|explorer|all [--model M] [--repeats N]`.

- `sbs`: Side by side (24 new tokens, 3 columns: starting alone, comparison alone, contrastive, as
  rows of one batch through `cdx.app.live.RowRules`) against one decode of the same 3 rows with the
  contrastive rule. Paired and interleaved like `cdx.bench`: the median over repeats of the ratio
  within a repeat. Target <= 1.3x.
- `explorer`: open a 10,000-text decode run as the explorer does (`load_text_run`) and build its
  plots (per-text histogram, per-token plot, to JSON as Plotly ships them). Target < 5 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hydra.utils import instantiate

PROMPT = "Tell me about yourself."


def sbs_ratio(sbs_s: list[float], decode_s: list[float]) -> float:
    """Median over repeats of side-by-side time / decode time within the same repeat."""
    return statistics.median(a / b for a, b in zip(sbs_s, decode_s, strict=True))


def _decoders(model: str, tokens: int):
    from cdx.app import presets
    from cdx.app.live import SIDES, RowRules, load_pair
    from cdx.decoding import ContrastiveDecoder, ProbDiff

    pair = load_pair((f"model={model}",))
    contrastive = instantiate(presets.compose(["decoding=amplify"]).decoding.rule)
    rules = RowRules((ProbDiff(starting_weight=1.0, comparison_weight=0.0),
                      ProbDiff(starting_weight=0.0, comparison_weight=1.0), contrastive), 1)
    kw: dict[str, Any] = dict(max_new_tokens=tokens, min_new_tokens=tokens, generations_per_prefix=1,
                              batch_size=len(SIDES))
    return ContrastiveDecoder(pair, rules, **kw), ContrastiveDecoder(pair, contrastive, **kw), [PROMPT] * len(SIDES)


def bench_sbs(model: str, repeats: int, tokens: int = 24) -> dict:
    sbs, one, prompts = _decoders(model, tokens)
    one.generate_batch(prompts)  # warm-up: caches, thread pools
    times: dict[str, list[float]] = {"sbs": [], "decode": []}
    for _ in range(repeats):
        for name, dec in (("sbs", sbs), ("decode", one)):
            t0 = time.perf_counter()
            dec.generate_batch(prompts)
            times[name].append(time.perf_counter() - t0)
    return {"row": f"side by side, {tokens} tokens x 3 columns vs one decode of the same rows", "model": model,
            "ratio": round(sbs_ratio(times["sbs"], times["decode"]), 3), "target": "<= 1.3x",
            "sbs_s": [round(t, 3) for t in times["sbs"]], "decode_s": [round(t, 3) for t in times["decode"]]}


def replicate_run(src: Path, dst: Path, n: int) -> Path:
    """A decode run of `n` texts: `src`'s records repeated with fresh ids (the explorer's load is
    what is measured, not the decoding), its run.json and summary.json copied."""
    dst.mkdir(parents=True, exist_ok=True)
    lines = [json.loads(ln) for ln in (src / "generations.jsonl").read_text().splitlines() if ln.strip()]
    with (dst / "generations.jsonl").open("w") as f:
        for i in range(n):
            rec = {**lines[i % len(lines)], "id": f"p{i:05d}-s00", "prompt_index": i, "sample_index": 0}
            f.write(json.dumps(rec) + "\n")
    for name in ("run.json", "summary.json"):
        if (src / name).is_file():
            (dst / name).write_text((src / name).read_text())
    return dst


def open_explorer(run_dir: Path) -> float:
    """Seconds to read the run and build the explorer's plots as JSON (what the browser receives)."""
    from cdx.app import render
    from cdx.app.runs import load_text_run

    t0 = time.perf_counter()
    run = load_text_run(run_dir)
    figs = [render.histogram(run.table, "kl_sc_mean" if "kl_sc_mean" in run.table else run.table.columns[-1]),
            render.token_plot(run.records[0], ["kl_sc", "js"])]
    for fig in figs:
        fig.to_json()
    return time.perf_counter() - t0


def bench_explorer(model: str, repeats: int, n: int = 10_000) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        subprocess.run([sys.executable, "-m", "cdx.run", f"model={model}", "prompts.limit=8",
                        "decoding.max_new_tokens=64", f"hydra.run.dir={src}"], check=True, capture_output=True)
        run = replicate_run(src, Path(tmp) / "big", n)
        times = [open_explorer(run) for _ in range(repeats)]
    return {"row": f"explorer opens a {n:,}-text run and its plots", "model": model,
            "median_s": round(statistics.median(times), 2), "target": "< 5 s", "times_s": [round(t, 2) for t in times]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m cdx.bench_app")
    ap.add_argument("which", choices=("sbs", "explorer", "all"))
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    if args.which in ("sbs", "all"):
        print(json.dumps(bench_sbs(args.model, args.repeats)))
    if args.which in ("explorer", "all"):
        print(json.dumps(bench_explorer(args.model, args.repeats)))


if __name__ == "__main__":
    main()
