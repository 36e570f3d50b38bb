"""A model pair: a *starting* and a *comparison* side, each a model plus its prompt context."""

from __future__ import annotations

import logging
import threading
from typing import Any

from cdx.models.interpolate import interpolate
from cdx.models.loading import load_model
from cdx.models.spec import ModelSpec

log = logging.getLogger(__name__)

_INTERPOLATED: dict[tuple, Any] = {}  # only the latest interpolated model is kept (sweeps move lam)
_INTERPOLATED_LOCK = threading.Lock()  # one process may serve several runs at once (the app)


class Side:
    """One side of the pair: the (possibly shared) model, its tokenizer and its context.

    (Plain classes, not dataclasses: Hydra would turn a dataclass argument into a config.)
    """

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, chat_template: bool = True):
        self.spec, self.model, self.tokenizer, self.chat_template = spec, model, tokenizer, chat_template

    @property
    def uses_chat_template(self) -> bool:
        return bool(self.chat_template and getattr(self.tokenizer, "chat_template", None))

    def prompt_ids(self, prompt: str) -> list[int]:
        """Token ids this side sees before the continuation: system prompt, prefix, prompt, turn opening."""
        text = (self.spec.prefix or "") + prompt
        if self.uses_chat_template:
            messages = [{"role": "system", "content": self.spec.system_prompt}] if self.spec.system_prompt else []
            messages.append({"role": "user", "content": text})
            rendered = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            return self.tokenizer(rendered, add_special_tokens=False).input_ids
        if self.spec.system_prompt:
            text = self.spec.system_prompt + "\n\n" + text
        return self.tokenizer(text).input_ids


class ModelPair:
    """The starting and comparison sides; `interpolation` is the lambda applied, if any."""

    def __init__(self, starting: Side, comparison: Side, interpolation: float | None = None):
        self.starting, self.comparison, self.interpolation = starting, comparison, interpolation

    @property
    def shares_weights(self) -> bool:
        """Same weights under two contexts: both sides can run as one batch."""
        return self.starting.model is self.comparison.model

    @property
    def shares_base(self) -> bool:
        """One side is an adapter view over the other side's weights (or both over one base)."""
        from cdx.models.adapters import unique_param_bytes

        if self.shares_weights:
            return True
        s, c = self.starting.model, self.comparison.model
        return unique_param_bytes(s, c) < unique_param_bytes(s) + unique_param_bytes(c)

    @property
    def tokenizer(self):
        return self.starting.tokenizer

    @property
    def vocab_size(self) -> int:
        """Width of the logits both sides are compared over."""
        return min(self.starting.model.config.vocab_size, self.comparison.model.config.vocab_size)

    def describe(self) -> dict:
        return {
            "starting": self.starting.spec.context_label,
            "comparison": self.comparison.spec.context_label,
            "interpolation": self.interpolation,
            "shares_weights": self.shares_weights,
            "shares_base": self.shares_base,
        }


def load_pair(
    starting: dict | ModelSpec,
    comparison: dict | ModelSpec,
    interpolation: float | None = None,
    chat_template: bool = True,
    cache_dir: str | None = None,
) -> ModelPair:
    """Load both sides, sharing weights where the specs allow; optionally interpolate the comparison.

    With `interpolation=lam`, the comparison side's weights become
    theta_start + lam * (theta_comp - theta_start) (see `cdx.models.interpolate`).
    """
    s_spec, c_spec = _spec(starting), _spec(comparison)
    s_model, s_tok = load_model(s_spec, cache_dir)
    c_model, c_tok = load_model(c_spec, cache_dir)
    check_same_vocab(s_tok, c_tok, s_spec.label, c_spec.label)
    if interpolation is not None:
        c_model = _interpolated(s_spec, c_spec, s_model, c_model, float(interpolation))
    return ModelPair(
        Side(s_spec, s_model, s_tok, chat_template),
        Side(c_spec, c_model, c_tok, chat_template),
        interpolation=None if interpolation is None else float(interpolation),
    )


def _spec(x) -> ModelSpec:
    if isinstance(x, ModelSpec):
        return x
    return ModelSpec(**dict(x))


def _interpolated(s_spec, c_spec, s_model, c_model, lam: float):
    from cdx.models.adapters import is_adapter_view, merged_copy

    key = (s_spec.weights_key, c_spec.weights_key, lam)
    with _INTERPOLATED_LOCK:
        if key not in _INTERPOLATED:
            _INTERPOLATED.clear()
            # an adapter view has LoRA parameter names; interpolate between full weight sets
            s_full = merged_copy(s_model) if is_adapter_view(s_model) else s_model
            c_full = merged_copy(c_model) if is_adapter_view(c_model) else c_model
            _INTERPOLATED[key] = interpolate(s_full, c_full, lam, (s_spec.label, c_spec.label))
        return _INTERPOLATED[key]


def check_same_vocab(tok_s, tok_c, label_s: str, label_c: str) -> None:
    """Token-level comparison needs one vocabulary; say exactly what differs if not."""
    if tok_s is tok_c:
        return
    v_s, v_c = tok_s.get_vocab(), tok_c.get_vocab()
    if v_s == v_c:
        return
    only_s = sorted(set(v_s) - set(v_c))[:5]
    only_c = sorted(set(v_c) - set(v_s))[:5]
    moved = [t for t in v_s if t in v_c and v_s[t] != v_c[t]][:5]
    raise ValueError(
        f"the two tokenizers differ, so their next-token distributions cannot be compared token by token:\n"
        f"  starting   {label_s} ({type(tok_s).__name__}, {len(v_s)} tokens)\n"
        f"  comparison {label_c} ({type(tok_c).__name__}, {len(v_c)} tokens)\n"
        f"  only in starting: {only_s}; only in comparison: {only_c}; different ids: {moved}\n"
        "Pick two models of one family (same tokenizer)."
    )


def raw_context_ids(side: Side) -> list[int]:
    """Ids before a raw (non-chat) text: BOS if the tokenizer adds one, then system prompt and prefix."""
    system = side.spec.system_prompt + "\n\n" if side.spec.system_prompt else ""
    return list(side.tokenizer(system + (side.spec.prefix or "")).input_ids)
