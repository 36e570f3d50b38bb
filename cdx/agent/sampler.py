"""Where experiment texts come from: both models' plain samples for a list of prompts.

`PairSampler` draws them from a loaded pair through the analysis's one-pass sampler, so the
records are exactly what `cdx.analysis.validate` tests on (modes plain_s / plain_c). Texts are
cached by prompt for the life of the sampler, so hypotheses tested on one prompt share its samples,
and every distinct prompt keeps one `prompt_index` (record ids stay unique across calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Sampler(Protocol):
    n_tokens: int
    """Tokens generated so far (for the pipeline's budget)."""

    def sample(self, prompts: Sequence[str]) -> list[dict]:
        """sample_pair records (id, mode plain_s|plain_c, model, prompt, prompt_index, text, n_tokens) of `prompts`."""
        ...


class PairSampler:
    """Plain samples of both sides of a pair, `samples_per_prompt` each."""

    def __init__(self, pair, samples_per_prompt: int = 1, max_new_tokens: int = 48, temperature: float = 1.0,
                 batch_size: int = 8, seed: int = 0):
        from cdx.analysis.sampling import SampleSettings

        self.pair = pair
        self.settings = SampleSettings(samples_per_prompt=samples_per_prompt, max_new_tokens=max_new_tokens,
                                       temperature=temperature, batch_size=batch_size, seed=seed)
        self._cache: dict[str, list[dict]] = {}
        self._index: dict[str, int] = {}
        self.n_tokens = 0

    def sample(self, prompts: Sequence[str]) -> list[dict]:
        from cdx.analysis.sampling import PLAIN, sample_pair

        todo = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        for p in todo:
            self._index.setdefault(p, len(self._index))
        if todo:
            ids = [self._index[p] for p in todo]
            for r in sample_pair(self.pair, todo, self.settings, modes=PLAIN, prompt_ids=ids, split="experiment"):
                self._cache.setdefault(r["prompt"], []).append(r)
                self.n_tokens += r["n_tokens"]
        return [r for p in dict.fromkeys(prompts) for r in self._cache.get(p, [])]
