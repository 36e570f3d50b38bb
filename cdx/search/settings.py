"""Typed settings of the search loop (conf/search/*.yaml); an unknown or misspelt key is an error."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from cdx.search.subsample import DIVERSITY_METHODS, SubsampleWeights

SEED_SOURCES = ("instructions", "prompts", "bank")
CONTEXT_VALUES = ("shown", "random", "hidden")


@dataclass
class SubsampleSettings:
    size: int = 6
    """Past prompts shown to the assistant per cycle."""
    temperature: float = 0.5
    """T of pi ~ exp(w/T); <= 0 takes the top `size` deterministically."""
    select_high: bool = True
    """Favour high weights (false: favour low divergence)."""
    divergence_weight: float = 1.0
    diversity_weight: float = 1.0
    criterion_weight: float = 0.0
    diversity: str = "harmonic"
    """harmonic (upstream) | nearest: the diversity score of each entry."""

    @property
    def weights(self) -> SubsampleWeights:
        return SubsampleWeights(self.divergence_weight, self.diversity_weight, self.criterion_weight)


@dataclass
class CriterionSettings:
    use: bool = False
    """Judge every prompt with the instructions' criterion (its score can weight the subsample)."""
    required: bool = False
    """Keep only new prompts judged yes (implies use)."""
    max_tokens: int = 8
    """Reply length of a yes/no judgement."""


@dataclass
class SearchSettings:
    instructions: str = "persona"
    seeds: str = "instructions"
    seed_bank: str | None = None
    n_cycles: int = 3
    n_repeat: int = 1
    max_failed_cycles: int = 5
    n_new_prompts: int = 6
    generations_per_prefix: int | None = 2
    max_new_tokens: int | None = 24
    metric: str = "kl_sc_mean"
    context_values: str = "shown"
    near_duplicate_threshold: float = 0.95
    assistant_temperature: float = 0.9
    assistant_max_tokens: int = 200
    top_n: int = 10
    subsample: SubsampleSettings = field(default_factory=SubsampleSettings)
    criterion: CriterionSettings = field(default_factory=CriterionSettings)

    def __post_init__(self) -> None:
        if isinstance(self.subsample, dict):
            self.subsample = _build(SubsampleSettings, self.subsample, "search.subsample")
        if isinstance(self.criterion, dict):
            self.criterion = _build(CriterionSettings, self.criterion, "search.criterion")
        _choice("search.seeds", self.seeds, SEED_SOURCES)
        _choice("search.context_values", self.context_values, CONTEXT_VALUES)
        _choice("search.subsample.diversity", self.subsample.diversity, DIVERSITY_METHODS)
        if self.seeds == "bank" and not self.seed_bank:
            raise ValueError("search.seeds=bank needs search.seed_bank=<run dir or bank.jsonl>")
        for name in ("n_cycles", "n_repeat", "max_failed_cycles", "n_new_prompts", "assistant_max_tokens", "top_n"):
            if getattr(self, name) < 1:
                raise ValueError(f"search.{name}={getattr(self, name)} must be >= 1")
        if self.subsample.size < 1:
            raise ValueError(f"search.subsample.size={self.subsample.size} must be >= 1")
        if not 0 < self.near_duplicate_threshold <= 1:
            raise ValueError(f"search.near_duplicate_threshold={self.near_duplicate_threshold} must be in (0, 1]")
        if self.criterion.required:
            self.criterion.use = True

    @classmethod
    def from_dict(cls, d: dict) -> SearchSettings:
        return _build(cls, {k: v for k, v in d.items() if k != "embedder"}, "search")


def _build(cls, d: dict, where: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {[f'{where}.{k}' for k in unknown]}; known: {sorted(known)}")
    return cls(**d)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not valid; use one of {allowed}")
