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
import itertools
import threading
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


_LOCKS: dict[int, threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()


def forward_lock(view) -> threading.Lock:
    """A lock per view for forwards with `adapter_names=`: PEFT implements per-row adapters by
    registering hooks on the view's layers for the duration of the call, which two threads
    calling one view at once would mix."""
    with _LOCKS_LOCK:
        return _LOCKS.setdefault(id(view), threading.Lock())


class RowSplit:
    """Runs an adapter view's LoRA on one contiguous range of batch rows only (the others see the bare
    base), for a base-vs-adapter pair decoded as one batch.

    PEFT offers the same through `adapter_names=[...]` per row, but it registers a pre-forward hook
    on every module of the model for the duration of each call and gathers each layer's rows by
    index, which on a CPU decode step cost more than the LoRA itself (docs/benchmarks.md). Here
    each plain LoRA linear layer of the view gets, once, a forward that reads a *thread-local*
    row range: unset (every other use of the view) it is PEFT's own forward, set it computes
    base(x) and adds s * B(A(x[lo:hi])) to rows lo:hi of that output in place. Thread-local,
    because a forward runs in its caller's thread: two threads using one view (say two decodes
    at once) never see each other's ranges, so no lock is needed.
    """

    def __init__(self, layers: list):
        self.layers = layers
        self._state = threading.local()

    @contextlib.contextmanager
    def rows(self, lo: int, hi: int):
        """Within this block, forwards in this thread apply the LoRA to rows lo:hi only."""
        self._state.rows = (lo, hi)
        try:
            yield
        finally:
            self._state.rows = None

    def current(self) -> tuple[int, int] | None:
        return getattr(self._state, "rows", None)


_ROW_SPLITS: dict[int, RowSplit | None] = {}


def row_split(view) -> RowSplit | None:
    """The view's `RowSplit` (installed on first use), or None where PEFT's per-row path must be
    used instead: a LoRA layer that is not a plain linear one (DoRA and other variants, embedding
    or convolution LoRA, several adapters in one layer, a merged layer)."""
    from peft.tuners.lora.layer import Linear as LoraLinear
    from peft.tuners.lora.layer import LoraLayer

    with _LOCKS_LOCK:
        if id(view) in _ROW_SPLITS:
            return _ROW_SPLITS[id(view)]
        lora = [m for m in view.modules() if isinstance(m, LoraLayer)]
        plain = all(type(m) is LoraLinear and len(m.lora_A) == 1 and not m.lora_variant and not m.merged
                    for m in lora)
        split = RowSplit(lora) if lora and plain else None
        for layer in split.layers if split else ():
            layer.forward = _split_forward(layer, layer.forward, split)
        _ROW_SPLITS[id(view)] = split
        return split


def _split_forward(layer, peft_forward, split: RowSplit):
    # an instance attribute, so nn.Module.__call__ finds it before the class's forward; a merged copy
    # of the view (`merged_copy`) drops these layers entirely, so it never calls a stale closure
    name = next(iter(layer.lora_A))
    scaled_b: list = [None, None]  # (key, s * B^T): computed once, as long as B and s stay as they are

    def b_t(b: torch.Tensor, s: float) -> torch.Tensor:  # (r, out)
        key = (b.data_ptr(), b._version, s)
        if scaled_b[0] != key:
            scaled_b[:] = [key, (b * s).t().contiguous()]
        return scaled_b[1]

    def forward(x, *args, **kwargs):
        rows = split.current()
        if rows is None or layer.disable_adapters or name not in layer.active_adapters:
            return peft_forward(x, *args, **kwargs)
        result = layer.base_layer(x, *args, **kwargs)  # (rows, ..., out), contiguous
        a, b, s = layer.lora_A[name].weight, layer.lora_B[name].weight, layer.scaling[name]
        lo, hi = rows
        xs = x[lo:hi]
        if layer.training or xs.dtype != a.dtype or result.dtype != a.dtype or not result.is_contiguous():
            delta = layer.lora_B[name](layer.lora_A[name](layer.lora_dropout[name](xs.to(a.dtype)))) * s
            result[lo:hi] += delta.to(result.dtype)
            return result
        # eval (dropout is the identity): two matrix products on the slice, the second added in place;
        # a decode step calls this for every LoRA layer, so the fewer small ops the better
        out = result[lo:hi].view(-1, result.shape[-1])
        out.addmm_(xs.reshape(-1, xs.shape[-1]).mm(a.t()), b_t(b, s))
        return result

    return forward


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
