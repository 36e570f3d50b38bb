"""Two-model contrastive decoding with one KV cache per model.

Each new token costs one incremental forward per model (or one forward at twice the batch when
both sides share weights). Per-token divergences are computed from the (B, V) next-token
log-probs the step already has, so no second scoring pass and no (B, T, V) tensor ever exists.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from cdx.decoding.rules import Rule
from cdx.decoding.streams import PairStreams, side_worker
from cdx.io.records import TextLogProb
from cdx.io.settings import DecodeSettings
from cdx.metrics.divergence import METRICS, token_metrics

log = logging.getLogger(__name__)

_LOG2_E = 1.0 / math.log(2.0)
TOKEN_KEYS = (*METRICS, "logp_s", "logp_c")
TOP_KEYS = ("ids_s", "logp_s", "ids_c", "logp_c")


@dataclass
class Generation:
    """One generated continuation with its per-token values (one entry per generated token)."""

    prompt_index: int
    sample_index: int
    prompt: str
    token_ids: list[int]
    tokens: dict[str, list[float]]
    finish_reason: str
    """eos, stop (a stop string) or length."""
    beam_score: float | None = None
    """Sum of log q(token) under the combined distribution (beam search only)."""
    prefix_tokens: dict[str, list[float]] = field(default_factory=dict)
    """Per-token values over the prompt (include_prefix_in_divergences)."""
    logq: list[float] | None = None
    """Per token, log q(token): its log-probability under the distribution the sampler drew it
    from (the rule's scores after the fallback, the min_new_tokens EOS mask, temperature, top-k
    and top-p, normalised). 0 for every greedy token (greedy draws from a point mass); None for
    beam search (its texts are not samples of any distribution)."""
    logq_shadow: list[list[float]] | None = None
    """With `ContrastiveDecoder.shadow_rules`: per shadow rule, per token, the drawn token's log q
    under that rule (as `logq`, as if the row had been drawn under it)."""
    top_next: dict[str, list[list]] | None = None
    """With `record_top_k` = k > 0: per generated token, each model's k most likely next tokens at
    that step, best first: `ids_s`, `logp_s`, `ids_c`, `logp_c`, each one list of k per token."""

    def text_logp(self) -> TextLogProb:
        """The whole text's log p_s, log p_c and log q (sums over its tokens), for importance weights.

        A token outside a distribution's support (log-prob -inf) is counted, not dropped: the sum
        is then -inf and `outside_*` says how many tokens made it so.
        """
        def total(vals: list[float]) -> tuple[float, int]:
            return math.fsum(vals), sum(1 for v in vals if v == float("-inf"))

        (s, out_s), (c, out_c) = total(self.tokens["logp_s"]), total(self.tokens["logp_c"])
        q, out_q = total(self.logq) if self.logq is not None else (None, 0)
        return TextLogProb(logp_s=s, logp_c=c, logp_q=q, outside_p_s=out_s, outside_p_c=out_c, outside_q=out_q)

    def top_next_fields(self, tokenizer) -> dict:
        """The record field `top_next`: per token, {"s": [[token, log p_s], ...], "c": [...]}, best
        first (the app shows them on click); none unless decoded with `record_top_k` > 0."""
        if not self.top_next:
            return {}
        t = self.top_next

        def side(ids: list[int], lps: list[float]) -> list[list]:
            return [[tokenizer.decode([i]), lp] for i, lp in zip(ids, lps)]

        return {"top_next": [{"s": side(a, b), "c": side(c, d)}
                             for a, b, c, d in zip(t["ids_s"], t["logp_s"], t["ids_c"], t["logp_c"])]}

    def logprob_fields(self) -> dict:
        """The record fields `logq` and `text_logp` (generations.jsonl, analysis samples); none for a
        given text that was only scored (no beam score, no log q: it was never decoded)."""
        if self.logq is None and self.beam_score is None:
            return {}
        return {"logq": self.logq, "text_logp": self.text_logp().model_dump()}


class ContrastiveDecoder:
    """Sample, greedy-decode or beam-search from `rule(p_s, p_c)` over a model pair."""

    def __init__(self, pair, rule: Rule, settings: DecodeSettings | None = None, *,
                 adapter_batch: bool | None = None, **options):
        """`settings`, or its fields as keywords (as Hydra passes conf/decoding/*.yaml), or both (the
        keywords override): checked once, by `DecodeSettings`."""
        self.settings = (settings or DecodeSettings()).but(**options) if options else settings or DecodeSettings()
        self.pair, self.rule = pair, rule
        # base vs base + adapter: one batch with per-row adapters (None/True) or two passes (False)
        self.adapter_batch = adapter_batch
        tok = pair.tokenizer
        self.eos_ids = _eos_ids(pair)
        self.pad_id = tok.pad_token_id
        self.weights = (float(rule.starting_weight), float(rule.comparison_weight))
        self.warpers = self._warpers()
        penalty = self.settings.repetition_penalty
        self.repetition = RepetitionPenaltyLogitsProcessor(penalty) if penalty != 1.0 else None

    shadow_rules: Sequence[Rule] = ()
    """Sampling only: rules under which each drawn token's log q is also recorded (`logq_shadow`,
    one list per rule), as if its row had been drawn under that rule: the same fallback, repetition
    penalty, min_new_tokens mask, temperature, top-k and top-p as `logq`. Multiple importance
    sampling needs every text's probability under every proposal of the pool it was drawn with
    (cdx.analysis.sampling.pooled_stopped_rates). Costs one rule and one log-softmax per rule a step."""

    on_step: Callable[[list[int], list[dict[str, float]]], None] | None = None
    """Sampling and greedy: called after each step's draw with every row's token and its per-token
    metrics, before finished rows are padded (e.g. to stream tokens to the app). It observes only."""

    # ---- public API ---------------------------------------------------------------------------

    def n_batches(self, n_prompts: int) -> int:
        return -(-n_prompts // self.settings.batch_size)

    def generate(
        self, prompts: Sequence[str], skip_batches: int = 0, seed: int | None = None
    ) -> Iterator[list[Generation]]:
        """Yield the generations of each batch of prompts as soon as it is done.

        `seed` overrides the decoder's seed for this call (e.g. one seed per search cycle).
        """
        for b in range(skip_batches, self.n_batches(len(prompts))):
            start = b * self.settings.batch_size
            yield self.generate_batch(prompts[start: start + self.settings.batch_size], first_index=start,
                                      batch_number=b, seed=seed)

    def generate_batch(
        self, prompts: Sequence[str], first_index: int = 0, batch_number: int = 0, seed: int | None = None
    ) -> list[Generation]:
        streams = PairStreams(self.pair, parallel=self.settings.parallel, adapter_batch=self.adapter_batch)
        if streams.parallel:
            # Two models side by side on the side workers: the caller's per-step work (the rule, the
            # draw) runs while the workers compute the metrics, so it takes one thread, on a worker
            # of its own (this thread's count is never changed: see streams); on all threads it
            # oversubscribed the cores: 1.12x -> 1.03x over the floor on two cores (docs/benchmarks.md).
            cancel = threading.Event()
            done = side_worker("driver", 1).submit(self._generate_batch, streams, prompts, first_index,
                                                   batch_number, seed, cancel)
            try:
                return done.result()
            except BaseException:  # Ctrl-C or a kill while waiting: the driver stops at its next step
                cancel.set()
                raise
        return self._generate_batch(streams, prompts, first_index, batch_number, seed)

    def _generate_batch(self, streams: PairStreams, prompts: Sequence[str], first_index: int, batch_number: int,
                        seed: int | None, cancel: threading.Event | None = None):
        rows_s = [self.pair.starting.prompt_ids(p) for p in prompts]
        rows_c = [self.pair.comparison.prompt_ids(p) for p in prompts]
        # One generator per batch, seeded from (seed, batch): reruns and resumed runs reproduce.
        seed = self.settings.seed if seed is None else seed
        # On the starting model's device: sampling noise is drawn where the scores are (no copy of
        # (N, V) weights to the host per step on a GPU). On the CPU the tokens equal HF generate's.
        gen = torch.Generator(device=streams.s.device).manual_seed(seed * 1_000_003 + batch_number)
        raw = (self._beam(streams, rows_s, rows_c, cancel) if self.settings.strategy == "beam"
               else self._sample(streams, rows_s, rows_c, gen, cancel))
        out = []
        per = self.settings.num_beams if self.settings.strategy == "beam" else self.settings.generations_per_prefix
        for row, (ids, toks, reason, score, logq, top, shadow) in enumerate(raw):
            i, j = divmod(row, per)
            if j >= self.settings.generations_per_prefix:
                continue
            out.append(Generation(first_index + i, j, prompts[i], ids, toks, reason, score, logq=logq, top_next=top,
                                  logq_shadow=shadow))
        if self.settings.include_prefix_in_divergences:
            self._add_prefix_divergences(out, rows_s, rows_c)
        return out

    # ---- one step of maths shared by all strategies -------------------------------------------

    def _step_values(self, streams: PairStreams, side_s: tuple[Tensor, Tensor], side_c: tuple[Tensor, Tensor],
                     step: int, generated: Tensor):
        """(scores (N, V), per-token metrics dict of (N,), logp_s, logp_c) for one step.

        `side_s`, `side_c` are each side's (log p, p), both (N, V), from `_log_probs`; `generated`
        (N, step) the tokens each row drew so far (for the repetition penalty).
        """
        (logp_s, p_s), (logp_c, p_c) = side_s, side_c
        if logp_c.device != logp_s.device:
            logp_c, p_c = logp_c.to(logp_s.device), p_c.to(logp_s.device)
        probs = (p_s, p_c)  # shared by the metrics and the rule
        metrics = self._start_metrics(streams, logp_s, logp_c, probs)  # started; the rule runs meanwhile
        scores = self._finish_scores(self.rule(logp_s, logp_c, probs=probs), logp_s, step, generated)
        return scores, metrics(), logp_s, logp_c

    def _finish_scores(self, scores: Tensor, logp_s: Tensor, step: int, generated: Tensor) -> Tensor:
        """A rule's scores (N, V) as drawn from: the fallback to p_s where it left no token, the
        repetition penalty, the min_new_tokens EOS mask (temperature, top-k, top-p come in `_draw`)."""
        dead = scores.amax(-1) == float("-inf")
        if dead.any():  # a rule left no token (e.g. an empty mask intersection): use p_s there
            scores = torch.where(dead[:, None], logp_s, scores)
        if self.repetition is not None and step > 0:  # out of place (scatter): scores may be logp_s itself
            scores = self.repetition(generated, scores)
        if step < self.settings.min_new_tokens and self.eos_ids:
            # out of place: a plain rule returns logp_s itself, which the metrics are still reading
            scores = scores.index_fill(-1, torch.tensor(self.eos_ids, device=scores.device), float("-inf"))
        return scores

    def _shadow_logq(self, side_s: tuple[Tensor, Tensor], side_c: tuple[Tensor, Tensor], step: int,
                     generated: Tensor, tok: Tensor) -> Tensor:
        """(K, N): log q of each row's drawn token under each of the K `shadow_rules`, warped as `_draw` warps."""
        (logp_s, p_s), (logp_c, p_c) = side_s, side_c
        logp_c, p_c = logp_c.to(logp_s.device), p_c.to(logp_s.device)
        out = []
        for rule in self.shadow_rules:
            scores = self._finish_scores(rule(logp_s, logp_c, probs=(p_s, p_c)), logp_s, step, generated)
            for w in self.warpers:
                scores = w(None, scores)
            out.append(torch.log_softmax(scores.double(), dim=-1).gather(-1, tok[:, None]).squeeze(-1))
        return torch.stack(out)

    def _start_metrics(self, streams: PairStreams, logp_s: Tensor, logp_c: Tensor, probs) -> Callable[[], dict]:
        """Start the per-token metrics; the returned function waits for them.

        In parallel mode the two side workers, idle between steps, each take half of the rows
        (the metrics are row-wise), while this thread applies the rule. Rules stay on one thread:
        a rule may depend on row positions (e.g. one rule per sample index).
        """
        n = logp_s.shape[0]
        if not streams.parallel or n < 2:
            values = token_metrics(logp_s, logp_c, *self.weights, probs=probs)
            return lambda: values

        def part(rows: slice):
            return lambda: token_metrics(logp_s[rows], logp_c[rows], *self.weights,
                                         probs=(probs[0][rows], probs[1][rows]))

        wait = streams.submit_both(part(slice(0, n // 2)), part(slice(n // 2, n)))

        def join() -> dict:
            a, b = wait()
            return {k: torch.cat([a[k], b[k]]) for k in a}

        return join

    def _warpers(self):
        ws = []
        if self.settings.temperature != 1.0:
            ws.append(TemperatureLogitsWarper(self.settings.temperature))
        if self.settings.top_k:
            ws.append(TopKLogitsWarper(int(self.settings.top_k)))
        if self.settings.top_p is not None and self.settings.top_p < 1.0:
            ws.append(TopPLogitsWarper(float(self.settings.top_p)))
        return ws

    def _noise(self, n: int, vocab: int, gen: torch.Generator) -> Tensor | None:
        """The randomness of the next draw from `gen`, or None when not sampling.

        `inverse_cdf`: one uniform u in [0, 1) per row, (n, 1) float64. `multinomial`: Exp(1)
        noise (n, V), drawn exactly as `torch.multinomial(w, 1)` draws it internally (it picks
        argmax(w / q), q ~ Exp(1)): same generator, same order, so the same tokens as HF
        `generate` with the same seed (tested), at the price of V draws per row, 5.7 ms a step
        for 8 rows of a 49k vocabulary on a CPU core against 0.35 ms for the whole inverse-CDF draw.
        Drawing it apart lets it run while the models run.
        """
        if self.settings.strategy != "sample":
            return None
        if self.settings.sampler == "multinomial":
            return torch.empty(n, vocab, device=gen.device).exponential_(1, generator=gen)
        return torch.rand(n, 1, dtype=torch.float64, device=gen.device, generator=gen)

    def _draw(self, scores: Tensor, noise: Tensor | None) -> tuple[Tensor, Tensor]:
        """(tokens (N,), log q of each token (N,)): the draw and its log-probability under the
        distribution drawn from, q = softmax(warped scores). Greedy: q is a point mass, log q = 0.

        log q(t) = (x_t - top) - log sum_v e^(x_v - top), with the sum the draw already makes
        (inverse-CDF: the float64 CDF's last entry; multinomial: one sum of its weights), so it
        costs a gather per row, not a softmax over the vocabulary.
        """
        if self.settings.strategy == "greedy":
            tok = scores.argmax(-1)
            return tok, torch.zeros(tok.shape, device=tok.device)
        for w in self.warpers:
            scores = w(None, scores)
        top = scores.amax(-1, keepdim=True)  # (N, 1)
        if torch.isnan(top).any():
            raise FloatingPointError("the combined scores hold NaN (model logits overflowed?); try dtype=float32")
        assert noise is not None  # _draw is called only when sampling
        noise = noise.to(scores.device)  # no-op unless device_map split the model
        # unnormalised weights are enough for both draws: skip softmax's normalising passes
        if self.settings.sampler == "multinomial":
            weights = (scores - top).exp_()  # exp as HF's softmax takes it: same tokens
            tok = (weights / noise).argmax(-1)
            total = weights.sum(-1, keepdim=True).double()  # float32 sum: ~1e-7 relative error in log q
        else:
            # 2^(x log2 e): MKL's exp slows 17x on the -inf and underflowing scores of contrastive rules;
            # exp2 does not (0.79 -> 0.05 ms a step), for a relative error of ~|x| 6e-8 in a weight e^x
            tok, total = _inverse_cdf(torch.sub(scores, top).mul_(_LOG2_E).exp2_(), noise)
        x = scores.gather(-1, tok[:, None]).double() - top.double()  # (N, 1)
        return tok, (x - total.log()).squeeze(-1)

    # ---- sampling and greedy ------------------------------------------------------------------

    def _sample(self, streams: PairStreams, rows_s, rows_c, gen, cancel: threading.Event | None = None):
        side_s, side_c = streams.prefill(rows_s, rows_c, then=_log_probs)
        r = self.settings.generations_per_prefix
        streams.repeat(r)
        side_s, side_c = _repeat(side_s, r), _repeat(side_c, r)
        n, vocab = side_s[0].shape
        hist = _History(n, self.settings.max_new_tokens, side_s[0].device, self.settings.record_top_k)
        noise = self._noise(n, vocab, gen)
        for step in range(self.settings.max_new_tokens):
            _stop_if(cancel)
            scores, metrics, logp_s, logp_c = self._step_values(streams, side_s, side_c, step, hist.tokens[:, :step])
            tok, logq = self._draw(scores, noise)
            if self.shadow_rules:
                hist.record_shadow(step, self._shadow_logq(side_s, side_c, step, hist.tokens[:, :step], tok))
            if self.on_step is not None:
                self.on_step(tok.tolist(), _rows_of(metrics))
            tok = torch.where(hist.done, self.pad_id, tok)
            hist.record(step, tok, metrics, logp_s, logp_c, logq)
            self._update_done(hist, step, tok)
            if hist.done.all() or step == self.settings.max_new_tokens - 1:  # no forward for a token never drawn
                break
            pending = streams.step_async(tok, then=_log_probs)
            noise = self._noise(n, vocab, gen)  # while the models take the step
            side_s, side_c = pending()
        return hist.rows(None)

    def _update_done(self, hist: _History, step: int, tok: Tensor) -> None:
        alive = ~hist.done
        if self.settings.stop_at_eos and self.eos_ids:
            eos = torch.isin(tok, torch.tensor(self.eos_ids, device=tok.device)) & alive
            hist.finish(eos, "eos")
        if self.settings.stop_strings:
            tokenizer = self.pair.tokenizer
            for i in torch.nonzero(~hist.done).flatten().tolist():
                tail = tokenizer.decode(hist.tokens[i, max(0, step - 15): step + 1])
                if any(s in tail for s in self.settings.stop_strings):
                    hist.finish_row(i, "stop")

    # ---- beam search --------------------------------------------------------------------------

    def _beam(self, streams: PairStreams, rows_s, rows_c, cancel: threading.Event | None = None):
        """Beam search over log q, q = softmax(rule scores / temperature); both caches reordered."""
        k, b = self.settings.num_beams, len(rows_s)
        side_s, side_c = streams.prefill(rows_s, rows_c, then=_log_probs)
        streams.repeat(k)
        side_s, side_c = _repeat(side_s, k), _repeat(side_c, k)
        device = side_s[0].device
        beam_scores = torch.zeros(b, k, device=device)
        beam_scores[:, 1:] = float("-inf")  # all beams start equal: let only the first expand
        hist = _History(b * k, self.settings.max_new_tokens, device, self.settings.record_top_k)
        for step in range(self.settings.max_new_tokens):
            _stop_if(cancel)
            scores, metrics, logp_s, logp_c = self._step_values(streams, side_s, side_c, step, hist.tokens[:, :step])
            logq = torch.log_softmax(scores / self.settings.temperature, dim=-1)
            # finished beams only extend with padding, at no cost, so their score stays fixed
            logq = torch.where(hist.done[:, None], float("-inf"), logq)
            logq[hist.done, self.pad_id] = 0.0
            vocab = logq.shape[-1]
            cand = (beam_scores.reshape(-1, 1) + logq).reshape(b, k * vocab)
            top, idx = cand.topk(k, dim=-1)  # (b, k), sorted best first
            src = (torch.arange(b, device=device)[:, None] * k + idx // vocab).reshape(-1)
            tok = (idx % vocab).reshape(-1)
            hist.reorder(src)
            hist.record(step, tok, {m: v[src] for m, v in metrics.items()}, logp_s[src], logp_c[src])
            beam_scores = top
            self._update_done(hist, step, tok)
            if hist.done.all() or step == self.settings.max_new_tokens - 1:
                break
            streams.reorder(src)
            side_s, side_c = streams.step(tok, then=_log_probs)
        return hist.rows(beam_scores.reshape(-1))

    # ---- divergences over the prompt ----------------------------------------------------------

    def _add_prefix_divergences(self, gens: list[Generation], rows_s, rows_c) -> None:
        from cdx.decoding.scoring import score_rows

        for g in gens:
            i = g.prompt_index - gens[0].prompt_index
            if rows_s[i] != rows_c[i]:
                raise ValueError(
                    "include_prefix_in_divergences needs both sides to see the same prompt tokens, but the "
                    "starting and comparison contexts differ (system prompt, prefix or chat template); "
                    "set include_prefix_in_divergences=false"
                )
        unique = sorted({g.prompt_index for g in gens})
        first = gens[0].prompt_index
        scored = score_rows(self.pair, [rows_s[p - first][:1] for p in unique],
                            [rows_c[p - first][:1] for p in unique],
                            [rows_s[p - first][1:] for p in unique], self.weights)
        by_prompt = dict(zip(unique, scored))
        for g in gens:
            g.prefix_tokens = by_prompt[g.prompt_index]


class _History:
    """Per-row record of chosen tokens and their per-token values, as (N, L) tensors."""

    def __init__(self, n: int, length: int, device, top_k: int = 0):
        self.tokens = torch.zeros(n, length, dtype=torch.long, device=device)
        # (N, L, k) each: both models' k most likely next tokens at every step (record_top_k)
        self.top = {k: torch.zeros(n, length, top_k, dtype=torch.long if k.startswith("ids") else torch.float32,
                                   device=device) for k in TOP_KEYS} if top_k else {}
        self.logq: Tensor | None = None  # (N, L) log q of each drawn token; stays None for beam search
        self.shadow: Tensor | None = None  # (K, N, L) log q under each shadow rule (shadow_rules only)
        self.values = {k: torch.zeros(n, length, device=device) for k in TOKEN_KEYS}
        self.alive = torch.zeros(n, length, dtype=torch.bool, device=device)
        self.done = torch.zeros(n, dtype=torch.bool, device=device)
        self.reason = ["length"] * n
        self.length = 0

    def record(self, step: int, tok: Tensor, metrics: dict, logp_s: Tensor, logp_c: Tensor,
               logq: Tensor | None = None) -> None:
        self.tokens[:, step] = tok
        if logq is not None:
            if self.logq is None:
                self.logq = torch.zeros(self.tokens.shape, device=self.tokens.device)
            self.logq[:, step] = logq
        self.alive[:, step] = ~self.done
        for k, v in metrics.items():
            self.values[k][:, step] = v
        self.values["logp_s"][:, step] = logp_s.gather(-1, tok[:, None]).squeeze(-1)
        self.values["logp_c"][:, step] = logp_c.gather(-1, tok[:, None]).squeeze(-1)
        if self.top:
            k = self.top["ids_s"].shape[-1]
            for side, logp in (("s", logp_s), ("c", logp_c)):
                lp, ids = logp.topk(k, dim=-1)  # (N, k), best first
                self.top[f"ids_{side}"][:, step], self.top[f"logp_{side}"][:, step] = ids, lp
        self.length = step + 1

    def record_shadow(self, step: int, logq: Tensor) -> None:
        """`logq` (K, N): the step's tokens' log q under each shadow rule."""
        if self.shadow is None:
            self.shadow = torch.zeros((logq.shape[0], *self.tokens.shape), dtype=torch.float64, device=logq.device)
        self.shadow[:, :, step] = logq

    def finish(self, rows: Tensor, reason: str) -> None:
        for i in torch.nonzero(rows).flatten().tolist():
            self.finish_row(i, reason)

    def finish_row(self, i: int, reason: str) -> None:
        self.done[i] = True
        self.reason[i] = reason

    def reorder(self, src: Tensor) -> None:
        self.tokens, self.alive, self.done = self.tokens[src], self.alive[src], self.done[src]
        if self.logq is not None:
            self.logq = self.logq[src]
        self.values = {k: v[src] for k, v in self.values.items()}
        self.top = {k: v[src] for k, v in self.top.items()}
        self.reason = [self.reason[i] for i in src.tolist()]

    def rows(self, scores: Tensor | None):
        tokens, alive = self.tokens[:, : self.length].cpu(), self.alive[:, : self.length].cpu()
        values = {k: v[:, : self.length].cpu() for k, v in self.values.items()}
        logq = None if self.logq is None else self.logq[:, : self.length].cpu()
        top = {k: v[:, : self.length].cpu() for k, v in self.top.items()}
        shadow = None if self.shadow is None else self.shadow[:, :, : self.length].cpu()
        out = []
        for i in range(tokens.shape[0]):
            keep = alive[i]
            out.append((
                tokens[i][keep].tolist(),
                {k: v[i][keep].tolist() for k, v in values.items()},
                self.reason[i],
                None if scores is None else float(scores[i]),
                None if logq is None else logq[i][keep].tolist(),
                {k: v[i][keep].tolist() for k, v in top.items()} or None,
                None if shadow is None else [s[i][keep].tolist() for s in shadow],
            ))
        return out


def _rows_of(metrics: dict[str, Tensor]) -> list[dict[str, float]]:
    """Per-token metrics, each (N,), as one dict per row."""
    cols = {k: v.tolist() for k, v in metrics.items()}
    return [{k: v[i] for k, v in cols.items()} for i in range(len(next(iter(cols.values()), [])))]


def _stop_if(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise DecodeCancelled("the caller stopped waiting for this batch")


class DecodeCancelled(Exception):
    """A batch given up by its caller (interrupted while the driver worker decoded it)."""


def inverse_cdf(weights: Tensor, u: Tensor) -> Tensor:
    """One draw per row from weights / weights.sum(-1): weights (N, V) >= 0, u (N, 1) in [0, 1) -> (N,).

    Picks the i with C[i-1] <= u C[V-1] < C[i], C the running sum of the row. The sum is float64,
    so rounding moves no token's share by more than ~V * 1e-16 (float32 would allow ~V * 6e-8,
    0.3% of the mass over 49k tokens). A token of weight 0 (a -inf score) has an empty interval and is
    never picked: the target is kept below C[V-1] even when u C[V-1] rounds up to it.
    """
    return _inverse_cdf(weights, u)[0]


def _inverse_cdf(weights: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
    """`inverse_cdf`'s draw (N,) and the row sums it normalised by, (N, 1) float64."""
    cdf = weights.cumsum(-1, dtype=torch.float64)  # (N, V)
    total = cdf[:, -1:]  # (N, 1), > 0 (in the decoder >= 1: its top token has weight 2^0)
    target = torch.minimum(u * total, torch.nextafter(total, torch.zeros_like(total)))
    return torch.searchsorted(cdf, target, right=True).squeeze(-1), total


def _log_probs(logits: Tensor) -> tuple[Tensor, Tensor]:
    """(log p, p), both (N, V), from one side's logits; runs on that side's thread."""
    logp = torch.log_softmax(logits, dim=-1)
    return logp, logp.exp()


def _repeat(side: tuple[Tensor, Tensor], r: int) -> tuple[Tensor, Tensor]:
    return (side[0].repeat_interleave(r, 0), side[1].repeat_interleave(r, 0)) if r > 1 else side


def _eos_ids(pair) -> list[int]:
    ids: set[int] = set()
    for side in (pair.starting, pair.comparison):
        for src in (side.tokenizer.eos_token_id, getattr(side.model.generation_config, "eos_token_id", None)):
            if src is None:
                continue
            ids.update(src if isinstance(src, (list, tuple)) else [src])
    return sorted(i for i in ids if i < pair.vocab_size)
