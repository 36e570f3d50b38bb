"""Run summary in the style of llama.cpp's KL-divergence report.

Token-level statistics pool every scored token of every text: mean with a 95% confidence
interval (normal approximation, standard error std/sqrt(n)), q90/q95/q99/max, top-1 agreement,
and each model's perplexity over all tokens with their ratio. Text-level statistics use one
value per text (the mean over its span) with a Student-t interval, which does not pretend that
tokens of one text are independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

DIVERGENCES = ("kl_sc", "kl_cs", "js")


def _dist(values: np.ndarray) -> dict[str, float]:
    n = values.size
    mean = float(values.mean())
    sem = float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    return {
        "mean": mean,
        "ci95_low": mean - 1.96 * sem,
        "ci95_high": mean + 1.96 * sem,
        "q90": float(np.quantile(values, 0.90)),
        "q95": float(np.quantile(values, 0.95)),
        "q99": float(np.quantile(values, 0.99)),
        "max": float(values.max()),
    }


def _text_ci(values: np.ndarray) -> dict[str, float]:
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return {"mean": mean, "ci95_low": float("nan"), "ci95_high": float("nan")}
    lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=stats.sem(values))
    return {"mean": mean, "ci95_low": float(lo), "ci95_high": float(hi)}


def summarize(records: Sequence[dict], sort_key: str = "kl_sc_mean", top_n: int = 5) -> dict:
    """Summary dict of generation/score records (each with `tokens` and `metrics`)."""
    scored = [r for r in records if r["metrics"].get("n_tokens", 0) > 0]
    if not scored:
        return {"n_texts": len(records), "n_tokens": 0}
    cat = {k: np.concatenate([np.asarray(r["tokens"][k], dtype=np.float64) for r in scored])
           for k in (*DIVERGENCES, "top1_agree", "logp_s", "logp_c")}
    ppl_s = math.exp(-cat["logp_s"].mean())
    ppl_c = math.exp(-cat["logp_c"].mean())
    out: dict = {"n_texts": len(records), "n_tokens": int(cat["kl_sc"].size), "sort_key": sort_key}
    out["token"] = {k: _dist(cat[k]) for k in DIVERGENCES}
    out["top1_agreement"] = float(cat["top1_agree"].mean())
    out["ppl_s"], out["ppl_c"], out["ppl_ratio_c_over_s"] = ppl_s, ppl_c, ppl_c / ppl_s
    out["text"] = {k: _text_ci(np.array([r["metrics"][f"{k}_mean"] for r in scored])) for k in DIVERGENCES}
    ranked = sorted(scored, key=lambda r: r["metrics"][sort_key], reverse=True)
    out["top"] = [{"id": r["id"], "prompt": r["prompt"], "continuation": r["continuation"],
                   sort_key: r["metrics"][sort_key]} for r in ranked[:top_n]]
    return out
