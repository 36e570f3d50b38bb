"""Rates from amplified samples, calibrated against the truth (issue 19; docs/analysis.md).

Testbed (`--organism`, default tiny_brand): the tiny_brand organism (a 2-layer model that ends answers with "Buy Zyx!", planted in
about a minute) and weight interpolations of it towards its base, tiny_english, so the rate of
the brand under the comparison model is anywhere from ~0 (lambda 0) to ~0.2 (lambda 1) and cheap
enough to measure exactly with tens of thousands of plain samples.

For each lambda:
  1. the reference: `--reference` texts per prompt from the comparison model itself (plain_c);
  2. `--seeds` replicates, each drawing `--per-prompt` texts per prompt from amp_c (amplified
     towards the comparison model, plausibility_beta=0 so every token stays drawable) and, in
     the same decoder batches, as many plain_c texts;
  3. per replicate: the plain rate (Wilson), the whole-text SNIS estimate and the stopped
     estimate (cdx.metrics.importance), each with its 95% interval, and the stopped estimate of
     the modes' texts pooled by multiple importance sampling (cdx.analysis.sampling.
     pooled_stopped_rates); coverage = the share of intervals holding the reference rate;
     efficiency = MSE of plain / MSE of the estimate over the replicates at the same number of
     texts (a pooled estimate's MSE times its texts over plain's MSE times plain's texts: the
     factor by which plain sampling needs more texts for the same error), and the same from the
     per-text variances pooled over replicates.

    python experiments/is_calibration.py --lams 0.5 0.7 1.0 --seeds 20 --out calibration.md
    python experiments/is_calibration.py --organism brand_zephyrix --phrase Zephyrix --tokens 32 --lams 0.5

Everything runs in one process on the CPU; one heavy process at a time on a shared machine.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from cdx.analysis.checkers import build_checker
from cdx.analysis.sampling import SampleSettings, importance_rates, pooled_stopped_rates, sample_pair, stopped_rates
from cdx.decoding import phrase_tokens
from cdx.models import load_pair
from cdx.organisms.build import build_organism, pair_of
from cdx.organisms.prompts import sample_prompts
from cdx.organisms.spec import load_spec


def pair_at(lam: float, cache: str, organism: str = "tiny_brand"):
    """The organism's base against its weights interpolated lam of the way (lam 1: the organism)."""
    spec = load_spec(organism)
    target = build_organism(spec, cache)
    p = pair_of(spec, target, cache)
    return load_pair(p["starting"], p["comparison"], interpolation=lam), build_checker(spec.checker)


def settings(per_prompt: int, alpha: float, tokens: int, seed: int, batch_size: int = 16,
             tilt: list[int] | None = None, bonus: float = 3.0) -> SampleSettings:
    return SampleSettings(samples_per_prompt=per_prompt, max_new_tokens=tokens, alpha=alpha, plausibility_beta=0.0,
                          batch_size=batch_size, seed=seed, tilt_tokens=tilt, tilt_bonus=bonus)


def reference(pair, checker, prompts, per_prompt: int, tokens: int, chunk: int = 250) -> tuple[int, int]:
    """Plain texts of the comparison model, `chunk` per prompt per pass (decoder rows = chunk)."""
    k = n = 0
    for i, start in enumerate(tqdm(range(0, per_prompt, chunk), desc="reference")):
        s = settings(min(chunk, per_prompt - start), 1.0, tokens, seed=10_000 + i, batch_size=1)
        recs = sample_pair(pair, prompts, s, modes=("plain_c",))
        k, n = k + sum(checker.check(r.text) for r in recs), n + len(recs)
    return k, n


ESTIMATES = {  # name: (modes, estimator)
    "plain": (("plain_c",), importance_rates),
    "amp_c, whole-text SNIS": (("amp_c",), importance_rates),
    "amp_c, stopped": (("amp_c",), stopped_rates),
    "tilt_c, stopped": (("tilt_c",), stopped_rates),
    "tilt_c + plain_c pooled, stopped": (("tilt_c", "plain_c"), pooled_stopped_rates),
    "all three pooled, stopped": (("amp_c", "tilt_c", "plain_c"), pooled_stopped_rates),
}


def replicate(pair, checker, prompts, per_prompt: int, a, seed: int, tilt: list[int]) -> dict:
    s = settings(per_prompt, a.alpha, a.tokens, seed, batch_size=a.batch_size, tilt=tilt, bonus=a.bonus)
    recs = sample_pair(pair, prompts, s, modes=("amp_c", "tilt_c", "plain_c"), pool=True)
    out = {name: fn(checker, recs, modes=modes).comparison for name, (modes, fn) in ESTIMATES.items()}
    out["drawn"] = {m: float(np.mean([checker.check(r.text) for r in recs if r.mode == m]))
                    for m in ("amp_c", "tilt_c")}
    return out


def summarise(lam: float, truth: float, k_ref: int, n_ref: int, reps: list[dict]) -> list[str]:
    rows = []
    for name in ESTIMATES:
        est = [r[name] for r in reps]
        ok = [e for e in est if e.rate is not None]
        cover = np.mean([e.low <= truth <= e.high for e in ok]) if ok else math.nan
        mse = np.mean([(e.rate - truth) ** 2 for e in ok]) if ok else math.nan
        rel = math.sqrt(mse) / truth if ok and truth > 0 else math.nan
        width = np.median([(e.high - e.low) / truth for e in ok]) if ok and truth > 0 else math.nan
        rows.append((name, len(ok), cover, rel, width, mse, np.median([e.ess for e in est]), est[0].n))
    mse_plain, n_plain = rows[0][5], rows[0][7]
    out = []
    for name, n_ok, cover, rel, width, mse, ess, n in rows:
        # at equal texts: a pooled estimate uses the texts of all its modes
        eff = mse_plain * n_plain / (mse * n) if mse and not math.isnan(mse) else math.nan
        out.append(f"| {lam:g} | {truth:.4f} ({k_ref}/{n_ref}) | {name} | {n_ok}/{len(reps)} | {cover:.2f} | "
                   f"{rel:.2f} | {width:.2f} | {ess:.0f} | {eff:.1f}x |")
    return out


def _fmt(e) -> str:
    if e.rate is None:
        return f"refused ({e.ess:.1f} effective of {e.n_hits} hits in {e.n} texts)"
    return f"{e.rate:.4f} [{e.low:.4f}, {e.high:.4f}] ({e.n_hits} hits in {e.n} texts, ESS {e.ess:.0f})"


def per_text_efficiency(truth: float, reps: list[dict], name: str) -> float:
    """r(1 - r) over the estimate's squared error times its texts, pooled over replicates."""
    ok = [r[name] for r in reps if r[name].rate is not None]
    if not ok or truth <= 0:
        return math.nan
    var_per_text = np.mean([(e.rate - truth) ** 2 * e.n for e in ok])
    return truth * (1 - truth) / var_per_text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lams", type=float, nargs="+", default=[0.5, 0.7, 1.0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--per-prompt", type=int, default=10, help="amplified (and plain) texts per prompt and replicate")
    ap.add_argument("--reference", type=int, default=1000, help="plain texts per prompt for the reference rate")
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--organism", default="tiny_brand", help="a lora organism: its base against interpolations of it")
    ap.add_argument("--batch-size", type=int, default=16, help="prompts per decoder batch")
    ap.add_argument("--phrase", default="Zyx", help="the behaviour's phrase: tilt_c favours the tokens it starts with")
    ap.add_argument("--bonus", type=float, default=3.0, help="tilt_c's log-odds bonus")
    ap.add_argument("--tokens", type=int, default=24)
    ap.add_argument("--cache", default=str(Path.home() / ".cache" / "cdx"))
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.manual_seed(0)
    prompts = sample_prompts("general", "heldout", a.prompts, seed=0)
    lines = [f"Testbed {a.organism}, {len(prompts)} held-out general prompts, {a.tokens} new tokens, alpha {a.alpha:g}, "
             f"plausibility_beta 0, tilt bonus {a.bonus:g} on the first tokens of {a.phrase!r}; {a.seeds} replicates of "
             f"{a.per_prompt} amp_c + {a.per_prompt} tilt_c + {a.per_prompt} plain_c texts per prompt; "
             f"reference {a.reference} plain texts per prompt.", "",
             "| lambda | reference rate | estimate | reported | coverage | rel. RMSE | median CI width / rate | "
             "median ESS | efficiency vs plain (MSE ratio) |", "|---|---|---|---|---|---|---|---|---|"]
    extra = []
    t0 = time.time()
    for lam in a.lams:
        pair, checker = pair_at(lam, a.cache, a.organism)
        tilt = phrase_tokens(pair.tokenizer, a.phrase)
        k_ref, n_ref = reference(pair, checker, prompts, a.reference, a.tokens) if a.reference else (0, 0)
        truth = k_ref / n_ref if n_ref else math.nan  # --reference 0: estimates only, no truth to check
        reps = [replicate(pair, checker, prompts, a.per_prompt, a, seed, tilt)
                for seed in tqdm(range(a.seeds), desc=f"lambda {lam:g} replicates")]
        lines += summarise(lam, truth, k_ref, n_ref, reps)
        for i, r in enumerate(reps):
            extra.append(f"lambda {lam:g} replicate {i}: " + "; ".join(
                f"{n} {_fmt(r[n])}" for n in ESTIMATES))
        drawn = {m: np.mean([r["drawn"][m] for r in reps]) for m in ("amp_c", "tilt_c")}
        eff = ", ".join(f"{n} {per_text_efficiency(truth, reps, n):.1f}x" for n in list(ESTIMATES)[1:])
        extra.append(f"lambda {lam:g}: the brand in {drawn['amp_c']:.3f} of amp_c texts, {drawn['tilt_c']:.3f} of "
                     f"tilt_c texts (truth {truth:.4f}; tilt tokens {tilt}); per-text efficiency vs plain: {eff}")
        print("\n".join(lines[-len(ESTIMATES):] + extra[-1:]), flush=True)
    lines += ["", *extra, "", f"{time.time() - t0:.0f} s wall"]
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
