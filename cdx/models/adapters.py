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
