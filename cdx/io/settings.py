"""The decoder's options, and the analysis sampler's: typed records, the only statement of each
option and its check (here, in the bottom layer, so the config checks import them without torch).

`ContrastiveDecoder` takes a `DecodeSettings` (or its fields as keywords, as Hydra passes them);
`conf/decoding/base.yaml` lists the same fields with the same defaults (a test holds them equal)
and every preset extends it, stating only what differs; `cdx.config` validates a composed config
against this record before any model loads; the analysis's `SampleSettings` extends it, so every
option here reaches the analysis's samples too. A new option is a field here, a line in base.yaml,
and its use in the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

STRATEGIES = ("sample", "greedy", "beam")
SAMPLERS = ("inverse_cdf", "multinomial")
"""How a sampled token is drawn: `inverse_cdf` (one uniform per row; the default) or `multinomial`
(V exponentials per row, as `torch.multinomial` draws them: the same tokens as HF `generate`)."""
MAX_RECORD_TOP_K = 20


def _line(err) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if not err["loc"]:
        return msg
    name = ".".join(str(x) for x in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{name} is not a decoding option"
    return f"{name}={err['input']!r} is not valid: {msg[:1].lower() + msg[1:]}"


class DecodeSettings(BaseModel):
    """How `ContrastiveDecoder` decodes (the rule, what it combines, is separate: `cdx.decoding.rules`)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    strategy: Literal["sample", "greedy", "beam"] = "sample"
    temperature: float = Field(1.0, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)
    """Nucleus of the combined distribution (None = off)."""
    top_k: int | None = Field(None, ge=1)
    """Top-k of the combined distribution (None = off)."""
    num_beams: int = Field(1, ge=1)
    generations_per_prefix: int = Field(1, ge=1)
    """Samples (or returned beams) per prompt."""
    max_new_tokens: int = Field(48, ge=1)
    min_new_tokens: int = Field(0, ge=0)
    """EOS is blocked before this many tokens."""
    stop_strings: tuple[str, ...] = ()
    """A text stops when one of these appears."""
    stop_at_eos: bool = True
    batch_size: int = Field(8, ge=1)
    """Prompts per batch (rows = batch_size * generations_per_prefix)."""
    seed: int = Field(0, ge=0)
    include_prefix_in_divergences: bool = False
    """Also score the prompt tokens (needs identical prompt ids on both sides)."""
    parallel: Literal["auto", True, False] = "auto"
    """Two models on the CPU: run both side by side on half the threads each."""
    sampler: Literal["inverse_cdf", "multinomial"] = "inverse_cdf"
    repetition_penalty: float = Field(1.0, gt=0)
    """Penalise tokens this text already generated, on the combined scores before temperature (as HF's
    `RepetitionPenaltyLogitsProcessor`: a score x becomes x / penalty if x > 0, else x * penalty);
    1.0 = off, > 1 repeats less. The prompt is not counted: the two models' prompts may differ.
    log q of each drawn token includes it (q is the distribution drawn from)."""
    record_top_k: int = Field(0, ge=0, le=MAX_RECORD_TOP_K)
    """Store each model's k most likely next tokens at every generated token (the app shows them on
    click); 0 = none. Costs one top-k per model and step, and k ids and log-probs per token on disk."""

    @field_validator("stop_strings", mode="before")
    @classmethod
    def _stop_list(cls, v):
        # YAML gives a list (ListConfig from Hydra), Python callers a list or tuple: stored as a tuple
        # so the settings stay hashable and immutable.
        if isinstance(v, str):
            raise ValueError(f"stop_strings={v!r} must be a list of strings, e.g. [{v!r}]")
        if v is None:
            return ()
        if not isinstance(v, Sequence):  # a list, a tuple, or Hydra's ListConfig
            raise ValueError(f"stop_strings={v!r} must be a list of strings, e.g. ['###']")
        return tuple(v)

    @field_validator("stop_strings")
    @classmethod
    def _no_empty_stop(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(s == "" for s in v):
            raise ValueError("an empty stop string matches at once and ends every text after one token; remove ''")
        return v

    @model_validator(mode="after")
    def _combinations(self) -> DecodeSettings:
        if self.num_beams > 1 and self.strategy != "beam":
            raise ValueError(
                f"num_beams={self.num_beams} does nothing with strategy={self.strategy}: set strategy=beam "
                "(decoding=beam), or num_beams=1"
            )
        if self.strategy == "beam" and self.num_beams < 2:
            raise ValueError("strategy=beam with num_beams=1 is greedy decoding: set num_beams >= 2 or strategy=greedy")
        if self.strategy == "beam" and self.generations_per_prefix > self.num_beams:
            raise ValueError(f"generations_per_prefix={self.generations_per_prefix} exceeds num_beams={self.num_beams}: "
                             "beam search returns at most num_beams continuations per prompt")
        if self.strategy != "sample" and (self.top_p is not None or self.top_k is not None):
            raise ValueError(f"top_p/top_k do nothing with strategy={self.strategy} (no sampling): set them to null, "
                             "or strategy=sample")
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens={self.min_new_tokens} exceeds max_new_tokens={self.max_new_tokens}: "
                             "set min_new_tokens <= max_new_tokens")
        return self

    @classmethod
    def of(cls, **options) -> Self:
        """The record of `options`, or a ValueError naming each bad value and what is valid, one line
        each (`strategy='nucleus' is not valid: input should be 'sample', 'greedy' or 'beam'`)."""
        try:
            return cls.model_validate(options)
        except ValidationError as e:
            raise ValueError("; ".join(_line(err) for err in e.errors())) from None

    def but(self, **changes) -> Self:
        """A copy with `changes` applied and checked (model_copy(update=...) would skip the checks)."""
        return type(self).of(**{**self.model_dump(), **changes})


class SampleSettings(DecodeSettings):
    """How samples are drawn (shared by discovery and validation): every decoder option
    (`DecodeSettings`: temperature, top_p, top_k, sampler, stop_strings, record_top_k, ...) and the
    sampling modes' own. The decoder's rule and rows per prompt come from the modes, so `strategy`
    stays `sample` and `generations_per_prefix` 1 (use samples_per_prompt)."""

    # Strict, as every analysis stage's options: "5" is not 5 and 1 is not true (cdx.config.schemas.Strict)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)

    samples_per_prompt: int = Field(1, ge=1)
    """Samples per prompt and mode."""
    alpha: float = Field(1.0, gt=0)
    """Amplification strength of amp_c / amp_s: weights (1 + alpha, -alpha); alpha=0 is plain
    sampling, already a mode."""
    plausibility_beta: float = Field(0.1, ge=0, le=1)
    tilt_tokens: tuple[int, ...] | None = None
    """Token ids the tilt_c / tilt_s modes favour (`cdx.decoding.phrase_tokens` of a behaviour's phrase)."""
    tilt_bonus: float = 3.0
    """Log-odds added to `tilt_tokens` in the tilt modes."""

    @field_validator("tilt_tokens", mode="before")
    @classmethod
    def _token_tuple(cls, v):
        return tuple(v) if isinstance(v, list) else v

    @model_validator(mode="after")
    def _sampling_only(self) -> SampleSettings:
        if self.strategy != "sample" or self.num_beams != 1:
            raise ValueError(f"strategy={self.strategy} (num_beams={self.num_beams}): analysis samples are drawn "
                             "by sampling, each mode's distribution exactly; remove strategy and num_beams")
        if self.generations_per_prefix != 1:
            raise ValueError(f"generations_per_prefix={self.generations_per_prefix}: the analysis sets the rows per "
                             "prompt from its modes; use samples_per_prompt instead")
        return self

    def decoding(self, rows_per_prompt: int) -> DecodeSettings:
        """The decoder's settings: these, with `rows_per_prompt` rows (modes x samples) per prompt."""
        own = set(SampleSettings.model_fields) - set(DecodeSettings.model_fields)
        return DecodeSettings(**{**self.model_dump(exclude=own), "generations_per_prefix": rows_per_prompt})


class TiltedSettings(BaseModel):
    """analysis.validate.tilted (cdx.analysis.tilted): which hypotheses the plain test left open get a
    test on samples tilted towards their phrase, and how many samples it draws."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool = False
    max_hypotheses: int = Field(3, ge=1)
    """Phrase hypotheses tested, the strongest on the discovery samples first (each draws its own samples)."""
    samples_per_prompt: int = Field(8, ge=1)
    """Tilted samples per held-out prompt and model."""
    bonus: float = Field(3.0, gt=0, allow_inf_nan=False)
    """Log-odds added to the phrase's first tokens (3: twenty times the odds)."""
    fdr: float = Field(0.05, gt=0, lt=1)
    """Benjamini-Hochberg level over the run's tilted tests."""
    pool: bool = False
    """Also draw plain texts of both models in the same batches (`samples_per_prompt` of each of four
    modes) and weight every text towards each model against the four modes' mixture (multiple
    importance sampling, cdx.analysis.sampling.pooled_stopped_rates): no weight above 4."""
