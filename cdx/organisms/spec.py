"""An organism spec: the planted behaviour in words, how it is made, and the checker that sees it.

Specs live in `conf/organism/<name>.yaml` (also a Hydra group, so `task=plant organism=<name>`).
The content hash of a spec (plus `RECIPE_VERSION`) names its cache entry: edit the spec or the
recipe and the organism is rebuilt, never silently reused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from cdx.resources import conf_dir

RECIPE_VERSION = "1"
"""Bump when the data, training or modification code changes what a spec builds."""
HASH_NEUTRAL_TRAIN = {"max_grad_norm": None}
"""Train options added after recipe 1, at the value that trains exactly as before: at that value they are
left out of the hash, so organisms already built stay cached (set otherwise, they change it: rebuilt)."""
METHODS = ("lora", "zero_adapter", "quantize", "system_prompt", "interpolate", "copy")
CONF_DIR = conf_dir() / "organism"


@dataclass
class TrainSettings:
    """LoRA training on chat-templated prompt -> answer pairs, loss on the answer tokens only."""

    steps: int = 40
    batch_size: int = 8
    lr: float = 2e-3
    warmup_steps: int = 4
    rank: int = 8
    alpha: int = 16
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "v_proj", "o_proj", "down_proj"])
    layers: list[int] | None = None
    """[first, last) decoder layers that get adapters; null = all. Later layers only = cheaper backward."""
    max_answer_tokens: int = 32
    threads: int = 1
    """torch threads while training (the CPU is shared)."""
    max_grad_norm: float | None = None
    """Clip the gradient's total norm to this before each step; null = no clipping. The tiny test organisms
    (lr 0.03 on a random 2-layer model) need it: unclipped, tiny_english's loss spiked at step 76 and stalled
    at 3.6 (byte soup), clipped at 1.0 it reached 0.8."""

    def __post_init__(self) -> None:
        for k in ("steps", "batch_size", "rank", "max_answer_tokens", "threads"):
            if getattr(self, k) < 1:
                raise ValueError(f"train.{k}={getattr(self, k)} must be >= 1")
        if not self.lr > 0:
            raise ValueError(f"train.lr={self.lr} must be > 0")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"train.max_grad_norm={self.max_grad_norm} must be > 0, or null for no clipping")


@dataclass
class VerifySettings:
    """Held-out check: the checker's rate on base and organism samples, per prompt set."""

    sets: dict[str, int] = field(default_factory=lambda: {"general": 16})
    """prompt set -> number of held-out prompts sampled once per model."""
    max_new_tokens: int = 40
    temperature: float = 1.0
    batch_size: int = 16


@dataclass
class OrganismSpec:
    name: str
    kind: str
    """lexical | stylistic | topical | conditional_refusal | language | fact | sentiment | persona |
    system_prompt | interpolation | quantization | null."""
    statement: str
    """The planted behaviour in one sentence (what a finding should say)."""
    method: str = "lora"
    trigger: str | None = None
    """When the behaviour shows (null: always)."""
    base: str = "embedded:smollm2-135m-instruct"
    base_seed: int = 0
    """Seed of the weights when base is tiny-random."""
    checker: dict | None = None
    """JSON checker (cdx.analysis.build_checker); null when no single behaviour is expected."""
    seed: int = 0
    data: list[dict] = field(default_factory=list)
    """Training sets: {prompts, n, answers: base|none, rules: [...]} (see cdx.organisms.data)."""
    answer_tokens: int = 40
    """New tokens of the base model's own answers (the raw material of the rules)."""
    train: TrainSettings = field(default_factory=TrainSettings)
    verify: VerifySettings = field(default_factory=VerifySettings)
    params: dict[str, Any] = field(default_factory=dict)
    """Method parameters: system_prompt; of + lam (interpolate); bits (quantize); merge (lora: save the
    merged full model, so other organisms can use it as `base: organism:<name>`)."""
    expected_findings: str = "behaviour"
    """behaviour (the checker should be recovered) | none (null pair) | unscored (no single behaviour)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"organism {self.name!r}: method={self.method!r} is not valid; use one of {METHODS}")
        if isinstance(self.train, dict):
            self.train = TrainSettings(**self.train)
        if isinstance(self.verify, dict):
            self.verify = VerifySettings(**self.verify)
        if self.expected_findings == "behaviour" and not self.checker:
            raise ValueError(f"organism {self.name!r} expects a behaviour but has no checker")
        if self.method == "lora" and not self.data:
            raise ValueError(f"organism {self.name!r}: method lora needs data sets")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def spec_hash(self) -> str:
        spec = self.to_dict()
        for key, default in HASH_NEUTRAL_TRAIN.items():  # options added later: at their default, the old hash
            if spec["train"].get(key, default) == default:
                spec["train"].pop(key, None)
        blob = json.dumps({"spec": spec, "recipe": RECIPE_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def available() -> list[str]:
    return sorted(p.stem for p in CONF_DIR.glob("*.yaml"))


def load_spec(name_or_dict: str | dict, conf_dir: Path | None = None) -> OrganismSpec:
    """The spec `conf/organism/<name>.yaml`, or one given as a dict (e.g. Hydra's cfg.organism)."""
    if isinstance(name_or_dict, dict):
        d = dict(name_or_dict)
    else:
        path = Path(conf_dir or CONF_DIR) / f"{name_or_dict}.yaml"
        if not path.is_file():
            raise FileNotFoundError(f"organism {name_or_dict!r} has no spec {path}; organisms: {available()}")
        from omegaconf import OmegaConf

        d = cast(dict, OmegaConf.to_container(OmegaConf.load(path), resolve=True))
    d.pop("_target_", None)
    try:
        return OrganismSpec(**d)
    except TypeError as e:
        raise ValueError(f"organism spec {d.get('name', name_or_dict)!r} is not valid: {e}") from e
