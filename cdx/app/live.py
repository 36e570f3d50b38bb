"""Side by side: each model's own continuation and the contrastive one, streamed token by token.

All three come from one `cdx.decoding.ContrastiveDecoder` batch on one loaded pair, a block of
rows per column (`RowRules`): weights (1, 0) is plain sampling from the starting model, (0, 1)
from the comparison model, and the preset's rule is the contrastive text.
Per-token divergences are the engine's own values (the same numbers a decode run writes); nothing
is recomputed here.

Process-wide state: pairs are cached with `st.cache_resource` (loaded once per process), and all
model use (loading, decoding, torch's thread settings) runs under one lock, so several browser
sessions at once take turns instead of racing on shared weights and settings.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import cast

import streamlit as st
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor

from cdx.app import presets
from cdx.decoding import ContrastiveDecoder, ProbDiff

MODEL_LOCK = threading.Lock()
SIDES = ("starting", "comparison", "contrastive")
STREAM_METRIC = "kl_sc"


@st.cache_resource(show_spinner=False, max_entries=2)
def load_pair(pair_overrides: tuple[str, ...]):
    """The pair the CLI would load for these overrides (loaded once per process)."""
    cfg = presets.compose(list(pair_overrides))
    return instantiate(cfg.model)


@dataclass
class RowRules:
    """One rule per block of `rows_per_rule` rows, so a single ContrastiveDecoder batch decodes every
    column: (1, 0) is plain sampling from the starting model, (0, 1) from the comparison model.

    The engine reads the weights only for the per-token `weighted_kl`; they are the last
    (contrastive) rule's, so that value is kept only for the contrastive column.
    """

    rules: tuple
    rows_per_rule: int

    @property
    def starting_weight(self) -> float:
        return self.rules[-1].starting_weight

    @property
    def comparison_weight(self) -> float:
        return self.rules[-1].comparison_weight

    def __call__(self, logp_s: Tensor, logp_c: Tensor, probs: tuple[Tensor, Tensor] | None = None) -> Tensor:
        k, out = self.rows_per_rule, []
        for i, rule in enumerate(self.rules):  # rows [i k, (i + 1) k) are column i's samples
            rows = slice(i * k, (i + 1) * k)
            out.append(rule(logp_s[rows], logp_c[rows], probs=None if probs is None else (probs[0][rows], probs[1][rows])))
        return torch.cat(out)  # (N, V)


TOP_K = 5
"""Both models' top tokens kept at every step of a side-by-side text (shown when a token is clicked)."""


class StreamingDecoder(ContrastiveDecoder):
    """A ContrastiveDecoder that reports each step's chosen tokens (every row) and their metrics
    through the engine's own `on_step` hook: it observes only, the draw is the parent's."""

    def __init__(self, *args, on_step=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_step = on_step


@dataclass
class Stream:
    """One sample's continuation so far: token strings and their per-token values."""

    token_strs: list[str] = field(default_factory=list)
    tokens: dict[str, list[float]] = field(default_factory=dict)
    done: bool = False
    finish_reason: str | None = None
    metrics: dict = field(default_factory=dict)
    ended: bool = False
    """The model drew an end-of-sequence token: later steps of the batch are padding, not shown."""
    top_next: list[dict] | None = None
    """Once done: per token, both models' top tokens at that step (`Generation.top_next_fields`)."""

    def add(self, text: str, values: dict[str, float]) -> None:
        self.token_strs.append(text)
        for k, v in values.items():
            self.tokens.setdefault(k, []).append(v)

    def as_record(self, prompt: str) -> dict:
        rec = {"id": "", "prompt": prompt, "token_strs": self.token_strs, "tokens": self.tokens}
        return {**rec, "top_next": self.top_next} if self.top_next else rec


@dataclass
class LiveRequest:
    pair_overrides: tuple[str, ...]
    decoding: str = "sample"
    prompt: str = "Tell me about yourself."
    max_new_tokens: int = 32
    temperature: float = 1.0
    greedy: bool = False
    seed: int = 0
    samples: int = 1
    """Samples per column (rows of the one batch)."""


class LiveRun:
    """A side-by-side generation running in a background thread; the page polls its streams.

    All columns are rows of ONE batch (`RowRules`): each step is one forward per model for every
    column and sample, instead of one decode per column.
    """

    def __init__(self, req: LiveRequest):
        self.req = req
        self.streams = {s: [Stream() for _ in range(req.samples)] for s in SIDES}
        self.status = "loading"
        self.error: str | None = None
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="cdx-side-by-side")

    def start(self) -> LiveRun:
        self.thread.start()
        return self

    def cancel(self) -> None:
        self._stop.set()

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def _run(self) -> None:
        try:
            with MODEL_LOCK:
                pair = load_pair(self.req.pair_overrides)
                self.status = "generating"
                self._generate(pair, self._rules())
            self.status = "cancelled" if self._stop.is_set() else "done"
        except Exception as e:  # noqa: BLE001 - shown in the page as a message, never a trace
            self.error, self.status = explain(e), "failed"

    def _rules(self) -> dict:
        cfg = presets.compose([f"decoding={self.req.decoding}"])
        contrastive = instantiate(cfg.decoding.rule)
        return {"starting": ProbDiff(starting_weight=1.0, comparison_weight=0.0),
                "comparison": ProbDiff(starting_weight=0.0, comparison_weight=1.0),
                "contrastive": contrastive}

    def _row_stream(self, row: int) -> Stream:
        side, sample = divmod(row, self.req.samples)
        return self.streams[SIDES[side]][sample]

    def _generate(self, pair, rules: dict) -> None:
        tok, k = pair.tokenizer, self.req.samples
        decoder = StreamingDecoder(pair, RowRules(tuple(rules[s] for s in SIDES), k),
                                   strategy="greedy" if self.req.greedy else "sample",
                                   temperature=self.req.temperature, max_new_tokens=self.req.max_new_tokens,
                                   generations_per_prefix=k, batch_size=len(SIDES), seed=self.req.seed,
                                   record_top_k=TOP_K)

        def on_step(token_ids: list[int], values: list[dict]) -> None:
            if self._stop.is_set():
                raise _Stopped
            for row, (t, v) in enumerate(zip(token_ids, values)):
                stream = self._row_stream(row)
                if not stream.ended:
                    stream.add(tok.decode([t]), v)
                    stream.ended = t in decoder.eos_ids

        decoder.on_step = on_step
        try:
            gens = decoder.generate_batch([self.req.prompt] * len(SIDES))
        except _Stopped:
            return
        # the final records replace the streamed view: same values, plus what the run would write
        from cdx.metrics.text import text_metrics

        for row, gen in enumerate(gens):
            stream = self._row_stream(row)
            tokens, metrics = dict(gen.tokens), text_metrics(gen.tokens)
            if SIDES[row // k] != "contrastive":  # weighted_kl used the contrastive weights (RowRules): dropped
                tokens.pop("weighted_kl", None)
                metrics = {m: v for m, v in metrics.items() if not m.startswith("weighted_kl")}
            stream.token_strs = [tok.decode([t]) for t in gen.token_ids]
            stream.tokens, stream.finish_reason, stream.done = tokens, gen.finish_reason, True
            stream.metrics = metrics
            stream.top_next = gen.top_next_fields(tok).get("top_next")


def score_text(pair_overrides: tuple[str, ...], prompt: str, text: str) -> Stream:
    """`text` after `prompt`, teacher-forced under both models (`cdx.decoding.score_rows`, as task=score)."""
    from cdx.decoding.scoring import score_rows
    from cdx.metrics.text import text_metrics

    with MODEL_LOCK:
        pair = load_pair(pair_overrides)
        ids = pair.tokenizer(text, add_special_tokens=False).input_ids
        values = score_rows(pair, [pair.starting.prompt_ids(prompt)], [pair.comparison.prompt_ids(prompt)], [ids])[0]
        strs = [pair.tokenizer.decode([t]) for t in ids]
    return Stream(token_strs=strs, tokens=values, done=True, finish_reason="given", metrics=text_metrics(values))


def system_prompts(pair_overrides: tuple[str, ...]) -> dict[str, str]:
    """Each side's system prompt as the composed config gives it ('' for none)."""
    model = presets.compose(list(pair_overrides)).model
    return {side: str(OmegaConf.select(model, f"{side}.system_prompt", default="") or "")
            for side in ("starting", "comparison")}


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a rate k/n (honest at the few samples a page draws)."""
    if n == 0:
        return 0.0, 1.0
    p, d = k / n, 1 + z * z / n
    mid, half = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, mid - half), min(1.0, mid + half)


def explain(e: BaseException) -> str:
    """The innermost cause of an error (Hydra wraps a loader's ValueError in InstantiationException)."""
    while e.__cause__ is not None:
        e = e.__cause__
    return f"{type(e).__name__}: {e}"


class _Stopped(Exception):
    """Raised inside the decoding loop to stop it when the user cancels."""


def decoding_rule_name(preset: str) -> str:
    d = cast(dict, OmegaConf.to_container(presets.compose([f"decoding={preset}"]).decoding.rule, resolve=True))
    return str(d.get("_target_", "")).rsplit(".", 1)[-1]
