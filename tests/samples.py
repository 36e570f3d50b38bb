"""Typed analysis samples for tests: the fields a test names, the rest filled in to fit the schema."""

from __future__ import annotations

from cdx.io.records import SampleRecord


def make_sample(id: str, mode: str, text: str, prompt_index: int = 0, prompt: str = "p", *, split: str = "validation",
                n_tokens: int | None = None, logp_s: list[float] | None = None, logp_c: list[float] | None = None,
                **fields) -> SampleRecord:
    """A SampleRecord of `n_tokens` tokens (default: one per given token string, else per word of the
    text), with log-probs of 0 where the test gives none; other fields (delta, model, token_strs,
    logq, text_logp, ...) as given."""
    n = n_tokens if n_tokens is not None else len(fields.get("token_strs") or text.split())
    return SampleRecord(id=id, split=split, mode=mode, prompt_index=prompt_index, prompt=prompt, text=text,
                        token_ids=list(range(n)), logp_s=logp_s if logp_s is not None else [0.0] * n,
                        logp_c=logp_c if logp_c is not None else [0.0] * n, n_tokens=n, **fields)
