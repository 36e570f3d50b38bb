"""Side by side: each model's own continuation and the contrastive one, streamed token by token.

All three come from `cdx.decoding.ContrastiveDecoder` on one loaded pair: weights (1, 0) is
plain sampling from the starting model, (0, 1) from the comparison model, and the preset's rule
is the contrastive text. Per-token divergences are the engine's own values (the same numbers a
decode run writes); nothing is recomputed here.

Process-wide state: pairs are cached with `st.cache_resource` (loaded once per process), and all
model use (loading, decoding, torch's thread settings) runs under one lock, so several browser
sessions at once take turns instead of racing on shared weights and settings.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import streamlit as st
from hydra.utils import instantiate
from omegaconf import OmegaConf

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


class StreamingDecoder(ContrastiveDecoder):
    """A ContrastiveDecoder that reports each chosen token of row 0 and its metrics as it goes.

    It only observes: the step values and the choice are the parent's, unchanged.
    """

    def __init__(self, *args, on_token=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.on_token = on_token
        self._metrics: dict = {}

    def _step_values(self, *args, **kwargs):
        out = super()._step_values(*args, **kwargs)
        self._metrics = out[1]  # per-token metrics of this step, each (N,)
        return out

    def _choose(self, *args, **kwargs):
        tok = super()._choose(*args, **kwargs)  # (N,)
        if self.on_token is not None:
            self.on_token(int(tok[0]), {k: float(v[0]) for k, v in self._metrics.items()})
        return tok


@dataclass
class Stream:
    """One side's continuation so far: token strings and their per-token values."""

    token_strs: list[str] = field(default_factory=list)
    tokens: dict[str, list[float]] = field(default_factory=dict)
    done: bool = False
    finish_reason: str | None = None
    metrics: dict = field(default_factory=dict)

    def add(self, text: str, values: dict[str, float]) -> None:
        self.token_strs.append(text)
        for k, v in values.items():
            self.tokens.setdefault(k, []).append(v)

    def as_record(self, prompt: str) -> dict:
        return {"id": "", "prompt": prompt, "token_strs": self.token_strs, "tokens": self.tokens}


@dataclass
class LiveRequest:
    pair_overrides: tuple[str, ...]
    decoding: str = "sample"
    prompt: str = "Tell me about yourself."
    max_new_tokens: int = 32
    temperature: float = 1.0
    greedy: bool = False
    seed: int = 0


class LiveRun:
    """A side-by-side generation running in a background thread; the page polls its streams."""

    def __init__(self, req: LiveRequest):
        self.req = req
        self.streams = {s: Stream() for s in SIDES}
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
                for side, rule in self._rules().items():
                    if self._stop.is_set():
                        break
                    self._generate(pair, side, rule)
            self.status = "cancelled" if self._stop.is_set() else "done"
        except Exception as e:  # noqa: BLE001 - shown in the page as a message, never a trace
            self.error, self.status = explain(e), "failed"

    def _rules(self) -> dict:
        cfg = presets.compose([f"decoding={self.req.decoding}"])
        contrastive = instantiate(cfg.decoding.rule)
        return {"starting": ProbDiff(starting_weight=1.0, comparison_weight=0.0),
                "comparison": ProbDiff(starting_weight=0.0, comparison_weight=1.0),
                "contrastive": contrastive}

    def _generate(self, pair, side: str, rule) -> None:
        stream, tok = self.streams[side], pair.tokenizer

        def on_token(token_id: int, values: dict) -> None:
            if self._stop.is_set():
                raise _Stopped
            stream.add(tok.decode([token_id]), values)

        decoder = StreamingDecoder(pair, rule, strategy="greedy" if self.req.greedy else "sample",
                                   temperature=self.req.temperature, max_new_tokens=self.req.max_new_tokens,
                                   generations_per_prefix=1, batch_size=1, seed=self.req.seed, on_token=on_token)
        try:
            gen = decoder.generate_batch([self.req.prompt])[0]
        except _Stopped:
            return
        # the final record replaces the streamed view: same values, plus what the run would write
        from cdx.metrics.text import text_metrics

        stream.token_strs = [tok.decode([t]) for t in gen.token_ids]
        stream.tokens, stream.finish_reason, stream.done = gen.tokens, gen.finish_reason, True
        stream.metrics = text_metrics(gen.tokens)


def explain(e: BaseException) -> str:
    """The innermost cause of an error (Hydra wraps a loader's ValueError in InstantiationException)."""
    while e.__cause__ is not None:
        e = e.__cause__
    return f"{type(e).__name__}: {e}"


class _Stopped(Exception):
    """Raised inside the decoding loop to stop it when the user cancels."""


def decoding_rule_name(preset: str) -> str:
    d = OmegaConf.to_container(presets.compose([f"decoding={preset}"]).decoding.rule, resolve=True)
    return str(d.get("_target_", "")).rsplit(".", 1)[-1]
