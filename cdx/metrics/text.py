"""Per-text metrics from per-token values over the scored span."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from cdx.metrics.divergence import METRICS


def text_metrics(tokens: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Mean and max of each divergence over the span, and each model's perplexity of the span.

    `tokens` holds per-token lists of equal length: the metrics in `METRICS` plus `logp_s`,
    `logp_c` (log-probability of the actual token under each model). Padding is never in them.
    """
    n = len(tokens["kl_sc"])
    if n == 0:
        return {"n_tokens": 0}
    out: dict[str, float] = {"n_tokens": n}
    for name in METRICS:
        vals = tokens[name]
        out[f"{name}_mean"] = sum(vals) / n
        if name != "top1_agree":
            out[f"{name}_max"] = max(vals)
    out["ppl_s"] = math.exp(-sum(tokens["logp_s"]) / n)
    out["ppl_c"] = math.exp(-sum(tokens["logp_c"]) / n)
    return out
