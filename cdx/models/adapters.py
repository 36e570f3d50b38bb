"""A PEFT adapter as a *view* over an already-loaded base: one copy of the base weights for any
number of adapters.

`adapter_view(base, adapter)` copies the base's module tree but not its tensors (`deepcopy` with
every parameter and buffer mapped to itself), then injects the adapter's LoRA layers into the
copy. The base module is never modified, so the base side of a pair keeps running the bare
model, and both sides can run at the same time on different threads (no `disable_adapter()`
toggling, which is module state shared by every caller). Memory per adapter is the LoRA
matrices only; a pair base vs base+adapter holds about one model.

The view runs the adapter unmerged: x W^T + s (x A^T) B^T per targeted layer, which equals the
merged weights' x (W + s B A)^T up to float rounding (tested). Merging in place is impossible
here (it would change the shared base), and a merged copy would double the memory.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import itertools
import threading
import weakref
from pathlib import Path

import torch


def _shared_memo(model: torch.nn.Module) -> dict[int, object]:
    """deepcopy memo that maps every tensor of `model` to itself: copy modules, share weights."""
    return {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}


def adapter_view(base: torch.nn.Module, adapter: str, label: str = "") -> torch.nn.Module:
    """base + `adapter` (a PEFT adapter directory or hub id) over the base's own weight tensors."""
    from peft import PeftModel

    if not (Path(adapter).is_dir() or "/" in adapter):
        raise FileNotFoundError(
            f"adapter {adapter!r}{' for ' + label if label else ''} is neither a directory nor a hub id; "
            "give the folder holding adapter_config.json"
        )
    view = copy.deepcopy(base, memo=_shared_memo(base))
    peft_model = PeftModel.from_pretrained(view, adapter, is_trainable=False)
    peft_model.eval()
    peft_model.requires_grad_(False)
    return peft_model


# Per-view state lives in tables keyed weakly by the view itself: an id(view) key would be reused
# once a view is freed (and a plain table would keep every view alive); stored on the view, a lock
# would break copy.deepcopy(view).
_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SPLITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TABLES_LOCK = threading.Lock()


def forward_lock(view) -> threading.Lock:
    """A lock per view for forwards with `adapter_names=`: PEFT implements per-row adapters by
    registering hooks on the view's layers for the duration of the call, which two threads
    calling one view at once would mix."""
    with _TABLES_LOCK:
        return _LOCKS.setdefault(view, threading.Lock())


_ROWS = threading.local()
"""The row range the LoRA applies to in the forward this thread is running (see RowSplit.rows)."""


class RowSplit:
    """Runs an adapter view's LoRA on one contiguous range of batch rows only (the others see the bare
    base), for a base-vs-adapter pair decoded as one batch.

    PEFT offers the same through `adapter_names=[...]` per row, but it registers a pre-forward hook
    on every module of the model for the duration of each call and gathers each layer's rows by
    index, which on a CPU decode step cost more than the LoRA itself (docs/benchmarks.md). Here
    each plain LoRA linear layer of the view becomes, once, a `RowSplitLinear` (a subclass, so a
    copy of the view keeps working) whose forward reads a *thread-local* row range: unset (every
    other use of the view) it is PEFT's own forward, set it computes base(x) and adds
    s * B(A(x[lo:hi])) to rows lo:hi of that output in place. Thread-local, because a forward runs
    in its caller's thread: two threads using one view (say two decodes at once) never see each
    other's ranges, so no lock is needed.
    """

    def __init__(self, layers: list):
        self.layers = layers

    @staticmethod
    @contextlib.contextmanager
    def rows(lo: int, hi: int):
        """Within this block, forwards in this thread apply the LoRA to rows lo:hi only."""
        _ROWS.range = (lo, hi)
        try:
            yield
        finally:
            _ROWS.range = None


def row_split(view) -> RowSplit | None:
    """The view's `RowSplit` (installed on first use), or None where PEFT's per-row path must be
    used instead: a LoRA layer that is not a plain linear one (DoRA and other variants, embedding
    or convolution LoRA, several adapters in one layer, a merged layer)."""
    with _TABLES_LOCK:
        if view not in _SPLITS:
            _SPLITS[view] = _install_row_split(view)
        return _SPLITS[view]


def _install_row_split(view) -> RowSplit | None:
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.tuners.lora.layer import LoraLayer

    split_cls = _row_split_linear()
    lora = [m for m in view.modules() if isinstance(m, LoraLayer)]
    plain = all(type(m) in (LoraLinear, split_cls) and len(m.lora_A) == 1 and not m.lora_variant and not m.merged
                for m in lora)
    if not (lora and plain):
        return None
    for layer in lora:
        layer.__class__ = split_cls
    return RowSplit(lora)


@functools.cache
def _row_split_linear() -> type:
    """PEFT's LoRA Linear with the row-range forward (built on first use: peft is imported lazily)."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    class RowSplitLinear(LoraLinear):
        def forward(self, x, *args, **kwargs):
            rows = getattr(_ROWS, "range", None)
            name = next(iter(self.lora_A))
            if rows is None or self.disable_adapters or name not in self.active_adapters:
                return super().forward(x, *args, **kwargs)
            result = self.base_layer(x, *args, **kwargs)  # (rows, ..., out), contiguous
            a, b, s = self.lora_A[name].weight, self.lora_B[name].weight, self.scaling[name]
            lo, hi = rows
            xs = x[lo:hi]
            if self.training or xs.dtype != a.dtype or result.dtype != a.dtype or not result.is_contiguous():
                delta = self.lora_B[name](self.lora_A[name](self.lora_dropout[name](xs.to(a.dtype)))) * s
                result[lo:hi] += delta.to(result.dtype)
                return result
            # eval (dropout is the identity): two matrix products on the slice, the second added in
            # place; a decode step calls this for every LoRA layer, so the fewer small ops the better
            out = result[lo:hi].view(-1, result.shape[-1])
            out.addmm_(xs.reshape(-1, xs.shape[-1]).mm(a.t()), self._scaled_b_t(b, s))
            return result

        def _scaled_b_t(self, b: torch.Tensor, s: float) -> torch.Tensor:  # (r, out), cached while B and s hold
            key = (b.data_ptr(), b._version, s)
            cached = self.__dict__.get("_cdx_scaled_b")
            if cached is None or cached[0] != key:
                cached = self.__dict__["_cdx_scaled_b"] = (key, (b * s).t().contiguous())
            return cached[1]

    return RowSplitLinear


def is_adapter_view(model) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def merged_copy(view) -> torch.nn.Module:
    """A standalone model with the adapter merged into copied weights (the view is untouched).

    For weight-space interpolation, which needs one full set of comparison weights.
    """
    return copy.deepcopy(view).merge_and_unload().eval()


def unique_param_bytes(*models: torch.nn.Module) -> int:
    """Bytes of distinct parameter storage across `models` (shared tensors counted once)."""
    seen: dict[int, int] = {}
    for m in models:
        for t in itertools.chain(m.parameters(), m.buffers()):
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
    return sum(seen.values())
