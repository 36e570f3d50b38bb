"""Stage 1 helpers: split prompts, and draw plain and amplified samples from a pair in one pass.

All sampling modes of one prompt run as rows of the same decoder batch through `RowwiseRule`, so
the two models are called once per token for every mode together (a bigger batch, which is
nearly free in the memory-bound decode regime), and each sample keeps both models' per-token
log-probs from that same pass: no second scoring pass, nothing generated twice.

Modes (what the text is drawn from):
    plain_s  p_s, exactly (ProbDiff with weights (1, 0))
    plain_c  p_c, exactly (ProbDiff with weights (0, 1))
    amp_c    logit-difference amplification of the comparison side: what it gained
    amp_s    amplification of the starting side: what the comparison model lost
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from pydantic import BaseModel
from scipy.special import logsumexp
from torch import Tensor

from cdx.analysis.checkers import settled_step
from cdx.decoding import ContrastiveDecoder, LogitDiff, ProbDiff, Tilt
from cdx.io.records import SampleRecord, TextLogProb
from cdx.io.settings import SampleSettings
from cdx.metrics.importance import RateEstimate, importance_rate, stopped_rate

MODES = ("plain_s", "plain_c", "amp_c", "amp_s")
PLAIN = ("plain_s", "plain_c")
MODEL_OF = {"plain_s": "starting", "plain_c": "comparison", "amp_c": "comparison+", "amp_s": "starting+",
            "tilt_c": "comparison~", "tilt_s": "starting~"}
AMPLIFIED = ("amp_c", "amp_s")
TILTED = ("tilt_c", "tilt_s")
"""Modes for measuring one behaviour's rate (not discovery): a model's own text tilted towards the
tokens its phrase starts with (`cdx.decoding.Tilt`; SampleSettings.tilt_tokens)."""


def split_prompts(prompts: Sequence[str], discovery_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(discovery indices, validation indices): a seeded, disjoint split of the distinct prompts."""
    if not 0 < discovery_fraction < 1:
        raise ValueError(f"discovery_fraction={discovery_fraction} must be strictly between 0 and 1")
    if len(set(prompts)) != len(prompts):
        raise ValueError("prompts contain duplicates; a prompt in both splits would leak discovery into validation")
    if len(prompts) < 4:
        raise ValueError(f"{len(prompts)} prompts are too few to split into discovery and validation (need >= 4)")
    order = np.random.default_rng(seed).permutation(len(prompts))
    k = min(max(1, round(discovery_fraction * len(prompts))), len(prompts) - 1)
    return sorted(order[:k].tolist()), sorted(order[k:].tolist())


def mode_rule(mode: str, s: SampleSettings):
    if mode == "plain_s":
        return ProbDiff(starting_weight=1.0, comparison_weight=0.0)
    if mode == "plain_c":
        return ProbDiff(starting_weight=0.0, comparison_weight=1.0)
    if mode in ("amp_c", "amp_s"):
        side = "comparison" if mode == "amp_c" else "starting"
        return LogitDiff(alpha=s.alpha, amplified=side, plausibility_beta=s.plausibility_beta)
    if mode in TILTED:
        if not s.tilt_tokens:
            raise ValueError(f"sampling mode {mode!r} needs tilt_tokens (the ids the behaviour's phrase starts with)")
        return Tilt(tokens=list(s.tilt_tokens), bonus=s.tilt_bonus, side="comparison" if mode == "tilt_c" else "starting")
    raise ValueError(f"sampling mode {mode!r} is not valid; use one of {MODES + TILTED}")


class RowwiseRule:
    """Applies rule k to the rows whose sample index j has j % len(rules) == k.

    The decoder lays a batch out as prompt i's samples j = 0..per-1 in rows i * per + j, so with
    per = len(rules) * r every prompt gets r samples under each rule. Only for sampling (beam
    search reorders rows).
    """

    def __init__(self, rules: Sequence, per: int):
        if per % len(rules):
            raise ValueError(f"per={per} samples per prompt is not a multiple of {len(rules)} rules")
        self.rules, self.per = list(rules), per
        # the decoder's weighted_kl metric reads these; (1, -1) makes it KL(p_s || p_c)
        self.starting_weight, self.comparison_weight = 1.0, -1.0

    def __call__(self, logp_s: Tensor, logp_c: Tensor, probs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        n = logp_s.shape[0]  # (N, V), N = prompts * per
        which = (torch.arange(n, device=logp_s.device) % self.per) % len(self.rules)
        out = torch.empty_like(logp_s)
        for k, rule in enumerate(self.rules):
            idx = torch.nonzero(which == k).flatten()
            if idx.numel() == 0:
                continue
            sub = None if probs is None else (probs[0][idx], probs[1][idx])
            out[idx] = rule(logp_s[idx], logp_c[idx], probs=sub)
        return out


def sample_pair(
    pair,
    prompts: Sequence[str],
    settings: SampleSettings | None = None,
    modes: Sequence[str] = PLAIN,
    prompt_ids: Sequence[int] | None = None,
    split: str = "validation",
    skip_batches: int = 0,
    on_batch: Callable[[list[SampleRecord]], None] | None = None,
    pool: bool = False,
) -> list[SampleRecord]:
    """Samples of every prompt under every mode, as records (see `sample_record`).

    `prompt_ids` are the prompts' indices in the run's full prompt list (default 0..n-1).
    `on_batch` receives each batch's records as soon as they exist (to write them out).
    `pool`: also record each text's log q under every mode (`logq_modes`), so that the modes' texts
    pool into one multiple-importance-sampling estimate (`pooled_stopped_rates`).
    """
    out = []
    for batch in iter_samples(pair, prompts, settings, modes, prompt_ids, split, skip_batches, pool):
        if on_batch is not None:
            on_batch(batch)
        out.extend(batch)
    return out


def make_decoder(pair, settings: SampleSettings, modes: Sequence[str], pool: bool = False) -> ContrastiveDecoder:
    """The decoder that draws `settings.samples_per_prompt` texts of every mode per prompt in one batch;
    with `pool`, each text's log q under every mode is recorded too (`ContrastiveDecoder.shadow_rules`)."""
    per = len(modes) * settings.samples_per_prompt
    rule = RowwiseRule([mode_rule(m, settings) for m in modes], per)
    decoder = ContrastiveDecoder(pair, rule, settings.decoding(per))
    if pool:
        decoder.shadow_rules = [mode_rule(m, settings) for m in modes]
    return decoder


def iter_samples(
    pair,
    prompts: Sequence[str],
    settings: SampleSettings | None = None,
    modes: Sequence[str] = PLAIN,
    prompt_ids: Sequence[int] | None = None,
    split: str = "validation",
    skip_batches: int = 0,
    pool: bool = False,
) -> Iterator[list[SampleRecord]]:
    s = settings or SampleSettings()
    ids = list(range(len(prompts))) if prompt_ids is None else list(prompt_ids)
    if len(ids) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts but {len(ids)} prompt_ids")
    for m in modes:
        mode_rule(m, s)  # fail before any decoding on a bad mode
    decoder = make_decoder(pair, s, modes, pool)
    for b in range(skip_batches, decoder.n_batches(len(prompts))):
        yield sample_batch(decoder, prompts, ids, b, modes, split)


def sample_batch(decoder: ContrastiveDecoder, prompts: Sequence[str], ids: Sequence[int], b: int,
                 modes: Sequence[str], split: str) -> list[SampleRecord]:
    """The records of batch `b`: prompts [b * batch_size, (b + 1) * batch_size), seeded by the run seed and b.

    The same batch always draws the same samples, so a resumed run remakes a lost record exactly by
    remaking its batch (with the same batch_size: it is part of the run identity).
    """
    start = b * decoder.settings.batch_size
    gens = decoder.generate_batch(list(prompts[start: start + decoder.settings.batch_size]), first_index=start, batch_number=b)
    return [sample_record(g, decoder.pair.tokenizer, modes, ids, split) for g in gens]


def batch_ids(decoder: ContrastiveDecoder, ids: Sequence[int], b: int, modes: Sequence[str], split: str) -> list[str]:
    """The record ids batch `b` makes, in the order the decoder yields them (prompt, then sample index)."""
    start = b * decoder.settings.batch_size
    return [sample_id(split, pid, modes, j) for pid in ids[start: start + decoder.settings.batch_size]
            for j in range(decoder.settings.generations_per_prefix)]


SPLIT_PREFIX = {"cluster_discovery": "cd", "cluster_validation": "cv"}
"""Id prefixes of the small clusters' extra samples (`cdx.analysis.pipeline.cluster_repeats`): they lie
beside the discovery and validation samples of the same prompts, so they need ids of their own."""


def sample_id(split: str, prompt_index: int, modes: Sequence[str], sample_index: int) -> str:
    """`d00012-amp_c-0`: split initial (`SPLIT_PREFIX` for the extra splits), prompt index, mode and
    repeat of decoder row `sample_index`."""
    mode, rep = modes[sample_index % len(modes)], sample_index // len(modes)
    return f"{SPLIT_PREFIX.get(split, split[0])}{prompt_index:05d}-{mode}-{rep}"


def sample_record(gen, tokenizer, modes: Sequence[str], ids: Sequence[int], split: str) -> SampleRecord:
    """One sample: which prompt, mode and split; its text and both models' per-token log-probs."""
    mode = modes[gen.sample_index % len(modes)]
    logp_s, logp_c = gen.tokens["logp_s"], gen.tokens["logp_c"]
    n = len(gen.token_ids)
    return SampleRecord(
        id=sample_id(split, ids[gen.prompt_index], modes, gen.sample_index),
        split=split,
        mode=mode,
        model=MODEL_OF[mode],
        prompt_index=ids[gen.prompt_index],
        prompt=gen.prompt,
        text=tokenizer.decode(gen.token_ids, skip_special_tokens=True),
        token_ids=gen.token_ids,
        token_strs=[tokenizer.decode([t]) for t in gen.token_ids],
        logp_s=logp_s,
        logp_c=logp_c,
        kl_sc=gen.tokens.get("kl_sc", []),
        delta=float(np.mean(np.subtract(logp_c, logp_s))) if n else 0.0,
        n_tokens=n,
        finish_reason=gen.finish_reason,
        **gen.logprob_fields(),  # logq, text_logp: the sample's importance weight towards either model
        **gen.top_next_fields(tokenizer),  # both models' top-k next tokens (record_top_k)
        **({} if gen.logq_shadow is None else {"logq_modes": dict(zip(modes, gen.logq_shadow, strict=True))}),
    )


class ModelRates(BaseModel):
    """A checker's rate under each model, estimated by importance weighting from samples of other
    distributions (cdx.metrics.importance; docs/analysis.md, "Rates from amplified samples")."""

    starting: RateEstimate
    """The rate under p_s: weights p_s(x) / q(x)."""
    comparison: RateEstimate
    """The rate under p_c: weights p_c(x) / q(x)."""
    modes: list[str]
    """The sampling modes whose texts were used (each weighted by its own q)."""


def importance_rates(checker, samples: Sequence[SampleRecord], modes: Sequence[str] = AMPLIFIED, **kw) -> ModelRates:
    """The rate of `checker` (`check(text) -> bool`) under each model from the samples of `modes`.

    Each text is weighted by p(x) / q(x) under the distribution of its own mode, so texts of
    several modes pool into one self-normalised estimate; the bootstrap resamples prompts.
    `kw` goes to `importance_rate` (confidence, min_ess, n_resamples, seed). Samples recorded
    before log q was (no `text_logp`) cannot be weighted: a ValueError says to draw them again.
    """
    use, logps, group, lq = _weighted_samples(samples, modes)
    hit = np.array([bool(checker.check(r)) for r in use])
    rate = {side: importance_rate(hit, np.array([getattr(t, f"logp_{side[0]}") for t in logps]), lq, group, **kw)
            for side in ("starting", "comparison")}
    return ModelRates(**rate, modes=list(modes))


def stopped_rates(checker, samples: Sequence[SampleRecord], modes: Sequence[str] = AMPLIFIED, **kw) -> ModelRates:
    """The rate of `checker` under each model from stopped weights (cdx.metrics.importance,
    "Stopped weights"): each hit weighted by p / q of its tokens up to the one that settled it.

    Unbiased only when the samples' proposal could draw every token (plausibility_beta=0, no
    top-p / top-k); the covered-mass check widens the interval when the samples show it could
    not. `kw` goes to `stopped_rate` (confidence, min_effective_hits, n_resamples, seed).
    """
    use = _weighted_samples(samples, modes)[0]
    steps = [settled_step(checker, r.token_strs, r) for r in use]
    rate = {}
    for side in ("starting", "comparison"):
        hit_logw, group, full = stopped_logw(checker, use, side, steps)
        rate[side] = stopped_rate(hit_logw, group, logw_full=full, **kw)
    return ModelRates(**rate, modes=list(modes))


def stopped_logw(checker, samples: Sequence[SampleRecord], target: str, steps: Sequence[int | None] | None = None
                 ) -> tuple[list[float | None], np.ndarray, np.ndarray]:
    """Per text: log W_tau towards `target` (starting | comparison) up to the token that settled a hit
    (None without a hit), the prompt index, and the whole-text log p - log q (covered-mass check).
    `steps`: the settled steps when already known (`settled_step` of each text)."""
    logps = [_text_logp(r) for r in samples]
    if steps is None:
        steps = [settled_step(checker, r.token_strs, r) for r in samples]
    key = f"logp_{target[0]}"
    hit_logw = [None if t is None else float(np.sum(np.subtract(getattr(r, key)[:t], np.array((r.logq or [])[:t], dtype=float))))
                for r, t in zip(samples, steps, strict=True)]
    full = np.array([getattr(t, key) for t in logps]) - np.array([t.logp_q for t in logps])
    return hit_logw, np.array([r.prompt_index for r in samples]), full


def pooled_stopped_rates(checker, samples: Sequence[SampleRecord], modes: Sequence[str], **kw) -> ModelRates:
    """The rate of `checker` under each model from the texts of all `modes` pooled by multiple
    importance sampling (docs/analysis.md, "Pooled proposals"): samples drawn together with
    `pool=True`, each prompt with the same number of texts of every mode.

    With n_k of N texts per prompt from proposal q_k, a text's stopped weight is the balance
    heuristic's p(x_<=tau) / sum_k (n_k / N) q_k(x_<=tau), whichever mode drew it (Veach & Guibas
    1995; Owen & Zhou 2000: deterministic allocation, unbiased). The plain mode of the target in the
    pool ("defensive" sampling) bounds every weight by N / n_plain, so the heavy tails of a tilted or
    amplified proposal alone cannot carry the estimate. `kw` goes to `stopped_rate`.
    """
    use = _weighted_samples(samples, modes)[0]
    share = pool_shares(use, modes)
    steps = [settled_step(checker, r.token_strs, r) for r in use]
    rate = {}
    for side in ("starting", "comparison"):
        hit_logw, group, full = pooled_stopped_logw(use, side, steps, share)
        rate[side] = stopped_rate(hit_logw, group, logw_full=full, **kw)
    return ModelRates(**rate, modes=list(modes))


def pooled_stopped_logw(samples: Sequence[SampleRecord], target: str, steps: Sequence[int | None],
                        share: dict[str, float]) -> tuple[list[float | None], np.ndarray, np.ndarray]:
    """As `stopped_logw`, towards `target`, with the mixture sum_k share[k] q_k as the proposal."""
    key = f"logp_{target[0]}"
    names = list(share)
    log_share = np.log([share[m] for m in names])[:, None]

    def log_mix(r: SampleRecord, t: int) -> float:
        q = np.array([(r.logq_modes or {})[m][:t] for m in names], dtype=np.float64).reshape(len(names), t)
        return float(logsumexp(log_share[:, 0] + q.sum(axis=1)))

    hit_logw = [None if t is None else float(np.sum(getattr(r, key)[:t])) - log_mix(r, t)
                for r, t in zip(samples, steps, strict=True)]
    full = np.array([float(np.sum(getattr(r, key))) - log_mix(r, r.n_tokens) for r in samples])
    return hit_logw, np.array([r.prompt_index for r in samples]), full


def pool_shares(samples: Sequence[SampleRecord], modes: Sequence[str]) -> dict[str, float]:
    """Each mode's share of every prompt's texts; refuses samples without `logq_modes` for every
    mode, or prompts with other shares (the balance heuristic's mixture must be each prompt's)."""
    missing = [r.id for r in samples if r.logq_modes is None or not set(modes) <= set(r.logq_modes)]
    if missing:
        raise ValueError(f"{len(missing)} samples (e.g. {missing[0]}) lack log q under every one of the modes "
                         f"{list(modes)}: draw them together with pool=True")
    counts: dict[int, dict[str, int]] = {}
    for r in samples:
        c = counts.setdefault(r.prompt_index, dict.fromkeys(modes, 0))
        c[r.mode] += 1
    shares = {tuple(v / sum(c.values()) for v in c.values()) for c in counts.values()}
    if len(shares) != 1:
        raise ValueError(f"the prompts have different shares of the modes {list(modes)}: {sorted(shares)}; "
                         "pool samples drawn as one batch per prompt")
    return dict(zip(modes, shares.pop(), strict=True))


def _weighted_samples(samples: Sequence[SampleRecord], modes: Sequence[str]):
    """(the samples of `modes`, their TextLogProb, prompt index and log q per text); refuses samples
    drawn before log q was recorded."""
    use = [r for r in samples if r.mode in modes]
    if not use:
        raise ValueError(f"no samples of modes {list(modes)} among {len(samples)} samples")
    logps = [_text_logp(r) for r in use]
    return use, logps, np.array([r.prompt_index for r in use]), np.array([t.logp_q for t in logps])


def _text_logp(record: SampleRecord) -> TextLogProb:
    if record.text_logp is None or record.text_logp.logp_q is None:
        raise ValueError(f"sample {record.id} has no log q (drawn before cdx recorded it, or not a sample): "
                         "draw the samples again to estimate rates from them")
    return record.text_logp
