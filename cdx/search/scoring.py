"""Score prompts by contrastive decoding: the mean over a prompt's generations of a per-text metric."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from cdx.metrics.divergence import METRICS
from cdx.metrics.text import text_metrics

TEXT_METRICS = tuple(
    [f"{m}_mean" for m in METRICS] + [f"{m}_max" for m in METRICS if m != "top1_agree"] + ["ppl_s", "ppl_c"]
)
"""Per-text metrics a search can rank by (see cdx.metrics.text.text_metrics)."""


@dataclass
class Scored:
    divergence: float
    """Mean of `sample_divergences` (0.0 if no generation produced a token)."""
    sample_divergences: list[float]
    responses: list[str]


class PromptScorer:
    """Runs every prompt of a call through the decoder in one `generate` (batched by its batch_size).

    Generations are grouped by their `prompt_index`, so each prompt keeps its own score whatever
    order the engine returns them in (upstream zipped sorted scores with unsorted prompts).
    """

    def __init__(self, decoder, metric: str = "kl_sc_mean"):
        if metric not in TEXT_METRICS:
            raise ValueError(f"search.metric={metric!r} is not a per-text metric; use one of {TEXT_METRICS}")
        self.decoder, self.metric = decoder, metric

    def score(self, prompts: Sequence[str], seed: int) -> list[Scored]:
        if not prompts:
            return []
        by_prompt = defaultdict(list)
        # the decoder seeds each batch from (seed, batch): one seed per cycle
        for batch in self.decoder.generate(list(prompts), seed=seed):
            for g in batch:
                by_prompt[g.prompt_index].append(g)
        tok = self.decoder.pair.tokenizer
        out = []
        for i in range(len(prompts)):
            gens = sorted(by_prompt[i], key=lambda g: g.sample_index)
            raw = [text_metrics(g.tokens).get(self.metric) for g in gens]
            vals = [float(v) for v in raw if v is not None and math.isfinite(v)]
            responses = [tok.decode(g.token_ids, skip_special_tokens=True) for g in gens]
            out.append(Scored(sum(vals) / len(vals) if vals else 0.0, vals, responses))
        return out
