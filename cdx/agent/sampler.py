"""Where experiment texts come from: both models' plain samples for a list of prompts.

`PairSampler` draws them from a loaded pair through the analysis's one-pass sampler (the same
samples the validation stage tests on); texts are cached by prompt for the life of the sampler,
so two hypotheses tested on one prompt share its samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Sampler(Protocol):
    def sample(self, prompts: Sequence[str]) -> list[dict]:
        """Records {prompt, model: starting|comparison, text, n_tokens} for every prompt, both models."""
        ...


class PairSampler:
    """Plain samples of both sides of a pair (modes plain_s and plain_c), `samples_per_prompt` each."""

    def __init__(self, pair, samples_per_prompt: int = 1, max_new_tokens: int = 48, temperature: float = 1.0,
                 batch_size: int = 8, seed: int = 0):
        from cdx.analysis.sampling import SampleSettings

        self.pair = pair
        self.settings = SampleSettings(samples_per_prompt=samples_per_prompt, max_new_tokens=max_new_tokens,
                                       temperature=temperature, batch_size=batch_size, seed=seed)
        self._cache: dict[str, list[dict]] = {}
        self.n_tokens = 0

    def sample(self, prompts: Sequence[str]) -> list[dict]:
        from cdx.analysis.sampling import PLAIN, sample_pair

        todo = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        if todo:
            for r in sample_pair(self.pair, todo, self.settings, modes=PLAIN, split="experiment"):
                rec = {"prompt": r["prompt"], "model": r["model"], "text": r["text"], "n_tokens": r["n_tokens"]}
                self._cache.setdefault(r["prompt"], []).append(rec)
                self.n_tokens += r["n_tokens"]
        return [r for p in dict.fromkeys(prompts) for r in self._cache.get(p, [])]


def counts(records: list[dict], prompts: set[str], check) -> dict:
    """{n_s, k_s, n_c, k_c} of `check(text)` over the records of `prompts`."""
    out = {"n_s": 0, "k_s": 0, "n_c": 0, "k_c": 0}
    for r in records:
        if r["prompt"] in prompts:
            side = "s" if r["model"] == "starting" else "c"
            out[f"n_{side}"] += 1
            out[f"k_{side}"] += int(bool(check(r["text"])))
    return out


def evidence(records: list[dict], prompts: set[str], check, model: str, limit: int = 5) -> list[dict]:
    """Up to `limit` texts of `model` on `prompts` that show the behaviour."""
    hits = [r for r in records if r["prompt"] in prompts and r["model"] == model and check(r["text"])]
    return [{"id": None, "model": r["model"], "prompt": r["prompt"], "text": r["text"]} for r in hits[:limit]]
