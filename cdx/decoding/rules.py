"""Combination rules: how two next-token distributions become the one that is sampled.

Every rule maps log-probabilities `logp_s`, `logp_c` (B, V) to scores (B, V) ready for
temperature / top-k / top-p and sampling (-inf = excluded). The optional `probs` = (p_s, p_c) are
their exponentials when the caller already has them (it saves passes over the vocabulary). A positive weight amplifies a side,
a negative weight contrasts it away: with the defaults (1, -1) the text shows where the
*starting* model puts more mass than the comparison model. (1, 0) is exactly ordinary sampling
from the starting model and (0, 1) from the comparison model. Every rule says which side its text
shows (`direction()`: starting | comparison | both | neither) and describes itself in one sentence
for reports (`describe()`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

import torch
from torch import Tensor

from cdx.io.records import Direction


def starting_nucleus(logp_s: Tensor, top_p: float) -> Tensor:
    """Bool mask (B, V) of the starting model's nucleus: the fewest top tokens with mass >= top_p.

    Same set as upstream (count of cumulative probabilities < p, plus one), vectorised.
    """
    sorted_lp, order = logp_s.sort(dim=-1, descending=True)
    cum = sorted_lp.exp().cumsum(-1)
    keep_sorted = (cum - sorted_lp.exp()) < top_p  # mass before this token is still below p
    return torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)


def similarity_gate(logp_s: Tensor, logp_c: Tensor, intensity: float) -> Tensor:
    """b = exp(-g (1 - cos(p_s, p_c))) in (0, 1], shape (B, 1): 1 when the models agree."""
    p_s, p_c = logp_s.exp(), logp_c.exp()
    sim = torch.nn.functional.cosine_similarity(p_s, p_c, dim=-1)
    return torch.exp(-intensity * (1.0 - sim)).unsqueeze(-1)


def log_weights(d: Tensor) -> Tensor:
    """log d for weights d >= 0 (B, V), in place, with -inf where d is 0.

    `d.log()` is 9x slower when half the vocabulary is 0 (MKL's log takes a slow path for 0), and
    a bool-mask `where` costs as much again, so the zeros are clamped to the dtype's smallest
    normal and their logs mapped to -inf by `threshold` (1.4 ms -> 0.2 ms for 8 x 49k, measured).
    The cut sits 0.01 above log(smallest normal), so a log that rounds either way still falls
    under it: weights below 1.01 x 1.2e-38 (float32; a share no draw can reach) count as 0.
    """
    tiny = torch.finfo(d.dtype).tiny
    return torch.nn.functional.threshold_(  # type: ignore[attr-defined]  # in torch, missing from its stubs
        d.clamp_min_(tiny).log_(), math.log(tiny) + 0.01, float("-inf"))


Side = Literal["starting", "comparison", "both", "neither"]
"""Which model's behaviour a rule's text shows: one side against the other, both (no contrast), or
neither (no positive weight: a degenerate rule)."""


@runtime_checkable
class Rule(Protocol):
    """What `ContrastiveDecoder` needs of a combination rule (ProbDiff, LogitDiff, Tilt, the
    analysis's RowwiseRule, the app's RowRules): scores from both sides' log-probs, and the two
    weights the `weighted_kl` metric reads ((1, -1) makes it KL(p_s || p_c))."""

    @property
    def starting_weight(self) -> float: ...

    @property
    def comparison_weight(self) -> float: ...

    def __call__(self, logp_s: Tensor, logp_c: Tensor, probs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """(B, V) log-probs of each side (and their exponentials) -> (B, V) scores, -inf = excluded."""
        ...

_MODEL = {"starting": "the starting model", "comparison": "the comparison model"}
_OTHER = {"starting": "comparison", "comparison": "starting"}


def _shown_side(w_s: float, w_c: float) -> Side:
    """The side a weighted combination samples: the positive side against a negative (or zero) one.

    Both positive (a product or mixture of the two) contrasts neither side: "both".
    """
    if w_s > 0 and w_c > 0:
        return "both"
    if w_c > 0:
        return "comparison"
    if w_s > 0:
        return "starting"
    return "neither"


def _describe(side: Side, w_s: float, w_c: float, detail: str, gating: float | None, nucleus: float | None) -> str:
    """One sentence: which text the rule writes, with the weights and options that shape it."""
    if side == "both":
        head = "text both models find likely, no contrast: neither side is subtracted"
    elif side == "neither":
        head = "no model's text: no side has a positive weight"
    elif 0.0 in (w_s, w_c):
        head = f"ordinary text of {_MODEL[side]}, no contrast: the other side has weight 0"
    else:
        head = f"text {_MODEL[side]} would write and {_MODEL[_OTHER[side]]} would not"
    opts = [f"w_s={w_s + 0.0:g}, w_c={w_c + 0.0:g}", detail]  # + 0.0 turns -0.0 into 0
    if gating is not None:
        opts.append(f"steps where the models agree follow the starting model (gating {gating:g})")
    if nucleus is not None:
        opts.append(f"only tokens in the starting model's top-p {nucleus:g} nucleus")
    return f"{head} ({'; '.join(o for o in opts if o)})"


@dataclass
class ProbDiff:
    """Sample from max(w_s p_s + w_c p_c, 0), renormalised (the upstream rule).

    When the positive mass of a row is below `min_positive_mass` (the models agree, or the
    nucleus limit removed all of it), that row falls back to the starting model's distribution
    (restricted to its nucleus if limited) instead of upstream's uniform 1e-7 floor, which made
    sampling near-uniform over the whole vocabulary whenever the models were close.
    `similarity_gating_intensity` g mixes towards p_s by b = exp(-g(1-cos)) before clamping;
    `limit_to_starting_model_top_p` keeps only the starting model's top-p nucleus.
    """

    starting_weight: float = 1.0
    comparison_weight: float = -1.0
    min_positive_mass: float = 1e-6
    similarity_gating_intensity: float | None = None
    limit_to_starting_model_top_p: float | None = None

    def __call__(self, logp_s: Tensor, logp_c: Tensor, probs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        plain = _plain(self, logp_s, logp_c)
        if plain is not None:
            return plain
        p_s, p_c = probs if probs is not None else (logp_s.exp(), logp_c.exp())
        w_s, w_c = self.starting_weight, self.comparison_weight
        # a fresh buffer, then in place: each pass over (B, V) is a decoding step's cost (p_s and
        # p_c are shared with the metrics, so they are never written)
        d = torch.add(p_s, p_c, alpha=w_c) if w_s == 1 else torch.mul(p_s, w_s).add_(p_c, alpha=w_c)
        if self.similarity_gating_intensity is not None:
            b = similarity_gate(logp_s, logp_c, self.similarity_gating_intensity)
            d = (1 - b) * d + b * p_s
        d.clamp_min_(0.0)
        if self.limit_to_starting_model_top_p is not None:
            nucleus = starting_nucleus(logp_s, self.limit_to_starting_model_top_p)
            d.mul_(nucleus)
            p_s = p_s * nucleus
        empty = d.sum(-1, keepdim=True) < self.min_positive_mass
        if empty.any():
            d = torch.where(empty, p_s, d)
        return log_weights(d)

    def direction(self) -> Side:
        """The side whose behaviour the text shows: where w_s p_s + w_c p_c is positive, the positive side leads."""
        return _shown_side(self.starting_weight, self.comparison_weight)

    def describe(self) -> str:
        """One sentence for reports: which text this rule samples, and how."""
        return _describe(self.direction(), self.starting_weight, self.comparison_weight,
                         "ProbDiff: max(w_s p_s + w_c p_c, 0)", self.similarity_gating_intensity,
                         self.limit_to_starting_model_top_p)


@dataclass
class LogitDiff:
    """Sample from softmax(w_s log p_s + w_c log p_c) within the adaptive plausibility set.

    Contrastive decoding (Li et al. 2022) and logit-difference amplification: with
    w_s = 1 + alpha, w_c = -alpha the starting model is amplified away from the comparison
    model. The plausibility mask keeps tokens with p_a >= beta * max p_a, where p_a is the
    amplified side (the side with the larger weight; `plausibility_from` can force one), so
    amplification never picks tokens that the amplified model itself finds implausible.
    Gating, if set, mixes in log space: (1 - b) * scores + b * log p_s.

    `alpha` (with `amplified`) is the sweepable shorthand: it sets the amplified side's weight
    to 1 + alpha and the other side's to -alpha; give either alpha or the two weights.
    """

    starting_weight: float | None = None
    comparison_weight: float | None = None
    alpha: float | None = None
    amplified: str = "starting"
    plausibility_beta: float = 0.1
    plausibility_from: str = "auto"
    similarity_gating_intensity: float | None = None
    limit_to_starting_model_top_p: float | None = None

    def __post_init__(self) -> None:
        if self.plausibility_from not in ("auto", "starting", "comparison"):
            raise ValueError(
                f"plausibility_from={self.plausibility_from!r} is not valid; use auto, starting or comparison"
            )
        if self.amplified not in ("starting", "comparison"):
            raise ValueError(f"amplified={self.amplified!r} is not valid; use starting or comparison")
        if self.alpha is not None:
            if self.starting_weight is not None or self.comparison_weight is not None:
                raise ValueError("give either alpha or starting_weight/comparison_weight, not both")
            amp, other = 1.0 + float(self.alpha), -float(self.alpha)
            self.starting_weight, self.comparison_weight = (amp, other) if self.amplified == "starting" else (other, amp)
        else:
            self.starting_weight = 2.0 if self.starting_weight is None else float(self.starting_weight)
            self.comparison_weight = -1.0 if self.comparison_weight is None else float(self.comparison_weight)

    def weights(self) -> tuple[float, float]:
        """(w_s, w_c): both set once __post_init__ has run (from alpha, or the defaults 2 and -1)."""
        assert self.starting_weight is not None and self.comparison_weight is not None
        return self.starting_weight, self.comparison_weight

    def __call__(self, logp_s: Tensor, logp_c: Tensor, probs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        plain = _plain(self, logp_s, logp_c)
        if plain is not None:
            return plain
        w_s, w_c = self.weights()
        scores = w_s * logp_s + w_c * logp_c
        if self.similarity_gating_intensity is not None:
            b = similarity_gate(logp_s, logp_c, self.similarity_gating_intensity)
            scores = (1 - b) * scores + b * logp_s
        mask = torch.ones_like(scores, dtype=torch.bool)
        if self.plausibility_beta > 0:
            ref = self._plausibility_reference(logp_s, logp_c)
            mask &= ref >= ref.max(-1, keepdim=True).values + math.log(self.plausibility_beta)
        if self.limit_to_starting_model_top_p is not None:
            mask &= starting_nucleus(logp_s, self.limit_to_starting_model_top_p)
        return scores.masked_fill(~mask, float("-inf"))

    def direction(self) -> Side:
        """The amplified side: the positive weight against a negative (or zero) one."""
        return _shown_side(*self.weights())

    def describe(self) -> str:
        """One sentence for reports: which text this rule samples, and how."""
        side = self.plausibility_from
        if side == "auto":
            w_s, w_c = self.weights()
            side = "starting" if w_s >= w_c else "comparison"
        plaus = (f"tokens with p >= {self.plausibility_beta:g} max p under {_MODEL[side]}"
                 if self.plausibility_beta > 0 else "no plausibility constraint")
        return _describe(self.direction(), *self.weights(),
                         f"LogitDiff: w_s log p_s + w_c log p_c, {plaus}", self.similarity_gating_intensity,
                         self.limit_to_starting_model_top_p)

    def _plausibility_reference(self, logp_s: Tensor, logp_c: Tensor) -> Tensor:
        side = self.plausibility_from
        if side == "auto":
            w_s, w_c = self.weights()
            side = "starting" if w_s >= w_c else "comparison"
        return logp_s if side == "starting" else logp_c


def _plain(rule, logp_s: Tensor, logp_c: Tensor) -> Tensor | None:
    """A zero weight on one side and no options is plain sampling from the other: return it exactly.

    For ProbDiff any positive weight renormalises to the same distribution; for LogitDiff only
    weight 1 does (weight w is temperature 1/w). No plausibility mask then: there is no contrast
    for it to guard.
    """
    opts = (rule.similarity_gating_intensity, rule.limit_to_starting_model_top_p)
    if any(o is not None for o in opts):
        return None
    ok = (lambda w: w > 0) if isinstance(rule, ProbDiff) else (lambda w: w == 1)
    if rule.comparison_weight == 0 and ok(rule.starting_weight):
        return logp_s
    if rule.starting_weight == 0 and ok(rule.comparison_weight):
        return logp_c
    return None


def direction_of(rule) -> Direction:
    """What a rule's texts show, for summaries and reports: the side and a sentence."""
    return Direction(shows=rule.direction(), description=rule.describe())


@dataclass
class Tilt:
    """Sample one model with a logit bonus on a few tokens: q(v) proportional to p(v) exp(bonus [v in tokens]).

    Exponential tilting towards a behaviour, for measuring its rate (docs/analysis.md, "Tilted
    proposals"): with `tokens` the ones a behaviour's phrase can start with, the phrase is written
    far more often, and every other choice keeps the model's own odds, so the likelihood ratio of
    a text's first t tokens is prod Z_u exp(-bonus [x_u in tokens]) with Z_u = 1 + (e^bonus - 1)
    p(tokens | x_<u): near 1 wherever the model gives those tokens little mass. Amplification
    (LogitDiff) instead reweights every token by the two models' ratio, and over a long text
    those ratios multiply into weights too uneven to use. Full support: every token stays drawable.
    """

    tokens: list[int]
    bonus: float = 3.0
    side: str = "comparison"

    def __post_init__(self) -> None:
        if self.side not in ("starting", "comparison"):
            raise ValueError(f"side={self.side!r} is not valid; use starting or comparison")
        if not self.tokens:
            raise ValueError("Tilt needs at least one token id to tilt towards (tokens=[...])")
        if not math.isfinite(self.bonus):
            raise ValueError(f"bonus={self.bonus} must be a finite number (log-odds added to the tokens)")
        self.tokens = sorted({int(t) for t in self.tokens})
        self._index: Tensor | None = None

    def __call__(self, logp_s: Tensor, logp_c: Tensor, probs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        base = logp_c if self.side == "comparison" else logp_s  # (B, V)
        if self._index is None or self._index.device != base.device:
            if max(self.tokens) >= base.shape[-1] or min(self.tokens) < 0:
                raise ValueError(f"Tilt token ids {self.tokens} are outside the vocabulary (size {base.shape[-1]})")
            self._index = torch.tensor(self.tokens, device=base.device)
        out = base.clone()
        out[:, self._index] += self.bonus
        return out

    @property
    def starting_weight(self) -> float:
        """The side sampled, as weights (1, 0) or (0, 1): what the decoder's weighted_kl metric reads."""
        return 1.0 if self.side == "starting" else 0.0

    @property
    def comparison_weight(self) -> float:
        return 1.0 - self.starting_weight

    def direction(self) -> Side:
        return self.side  # type: ignore[return-value]  # checked in __post_init__

    def describe(self) -> str:
        return (f"ordinary text of {_MODEL[self.side]} tilted towards {len(self.tokens)} token(s) "
                f"(Tilt: log p + {self.bonus:g} on tokens {self.tokens[:8]}{'...' if len(self.tokens) > 8 else ''})")


def phrase_tokens(tokenizer, phrase: str) -> list[int]:
    """The ids a phrase can start with: the first token of it as written, lower-case and capitalised,
    each with and without a leading space (tokenizers give a word after a space its own token); a
    token that is only whitespace is never one of them."""
    words = {phrase, phrase.lower(), phrase[:1].upper() + phrase[1:]}
    ids = set()
    for w in words:
        for text in (w, " " + w):
            enc = tokenizer.encode(text, add_special_tokens=False)
            # a tokenizer that writes the space as its own token: tilting it would tilt every word
            while enc and not tokenizer.decode([enc[0]]).strip():
                enc = enc[1:]
            if enc:
                ids.add(int(enc[0]))
    if not ids:
        raise ValueError(f"phrase {phrase!r} has no tokens to tilt towards")
    return sorted(ids)
