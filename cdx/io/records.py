"""Typed run records: what one line of generations.jsonl / scores.jsonl / bank.jsonl holds.

Records stay plain dicts on disk and in memory (readers and trackers take dicts); these pydantic
models state the schema, and `invalid_records` checks records against it, so a reader can tell
a damaged record from a good one. Unknown extra fields are allowed (older and newer runs differ
in optional fields such as `beam_score` or `prefix_tokens`).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator


class TextRecord(BaseModel):
    """One continuation of decode (generations.jsonl) or one scored text (scores.jsonl)."""

    model_config = ConfigDict(extra="allow")

    id: str
    """`p<prompt index>-s<sample index>`, e.g. p00012-s01; resume finds done work by it."""
    prompt_index: int
    sample_index: int
    prompt: str
    continuation: str
    token_ids: list[int]
    token_strs: list[str]
    tokens: dict[str, list[float | None]]
    """Per-token values (kl_sc, kl_cs, js, top1_agree, weighted_kl, logp_s, logp_c), one per token."""
    metrics: dict[str, float | int | None]
    """Per-text summaries (kl_sc_mean, ppl_s, n_tokens, ...)."""
    finish_reason: str
    """eos | stop | length | given (score)."""

    @field_validator("tokens")
    @classmethod
    def _aligned(cls, tokens: dict, info):
        ids = info.data.get("token_ids")
        if ids is not None:
            bad = [k for k, v in tokens.items() if len(v) != len(ids)]
            if bad:
                raise ValueError(f"per-token values {bad} do not have one value per token ({len(ids)})")
        return tokens


class BankRecord(BaseModel):
    """One prompt of a search bank (bank.jsonl); see cdx.search.bank.BankEntry."""

    model_config = ConfigDict(extra="allow")

    id: int
    prompt: str
    divergence: float
    sample_divergences: list[float]
    responses: list[str]
    criterion: float | None
    cycle: int
    repeat: int
    diversity: float = 0.0


class SampleRecord(BaseModel):
    """One analysis sample (discovery.jsonl, validation.jsonl); see cdx.analysis.sampling.sample_record."""

    model_config = ConfigDict(extra="allow")

    id: str
    """`<split initial><prompt index>-<mode>-<repeat>`, e.g. v00012-plain_c-0; resume finds done work by it."""
    split: str
    mode: str
    prompt_index: int
    prompt: str
    text: str
    token_ids: list[int]
    logp_s: list[float]
    logp_c: list[float]
    n_tokens: int

    @field_validator("logp_s", "logp_c", "n_tokens")
    @classmethod
    def _aligned(cls, value, info):
        ids = info.data.get("token_ids")
        n = len(value) if isinstance(value, list) else value
        if ids is not None and n != len(ids):
            raise ValueError(f"{info.field_name} does not match the {len(ids)} tokens")
        return value


SCHEMAS: dict[str, type[BaseModel]] = {"decode": TextRecord, "score": TextRecord, "search": BankRecord,
                                       "sample": SampleRecord}
"""Run kind (or `sample`: the analysis samples) -> its record model (kinds without one are not checked)."""


def invalid_records(kind: str, records: list[dict]) -> list[tuple[int, str]]:
    """(index, reason) of each record that does not fit the schema of `kind` ([] for unchecked kinds)."""
    model = SCHEMAS.get(kind)
    if model is None:
        return []
    out = []
    for i, rec in enumerate(records):
        try:
            model.model_validate(rec)
        except ValidationError as e:
            first = e.errors()[0]
            out.append((i, f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"))
    return out
