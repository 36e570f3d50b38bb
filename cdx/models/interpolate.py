"""Weight-space interpolation and extrapolation between two same-architecture models.

    theta(lam) = theta_start + lam * (theta_comp - theta_start)

lam = 0 gives the starting model, lam = 1 the comparison model, 0 < lam < 1 a point between them,
lam > 1 extrapolates past the comparison model (amplifies the fine-tune) and lam < 0 goes the
other way. Computed with `torch.lerp` in float32, which returns both endpoints bit-exactly, and
never on quantized codes (int8/nf4 codes carry per-block scales; mixing them is meaningless).
"""

from __future__ import annotations

import copy

import torch


def interpolate(start: torch.nn.Module, comp: torch.nn.Module, lam: float, labels=("start", "comparison")):
    """A new model with weights theta(lam); `start` and `comp` are left untouched."""
    for m, label in zip((start, comp), labels):
        if getattr(m, "is_quantized", False) or getattr(m, "hf_quantizer", None) is not None:
            raise ValueError(
                f"cannot interpolate the quantized model {label}: interpolation needs floating-point weights; "
                "set quantization=null for both sides"
            )
    s_state, c_state = start.state_dict(), comp.state_dict()
    if s_state.keys() != c_state.keys():
        diff = sorted(set(s_state) ^ set(c_state))[:5]
        raise ValueError(f"cannot interpolate {labels[0]} and {labels[1]}: different parameter names, e.g. {diff}")
    out = copy.deepcopy(comp)
    new_state = {}
    for name, s in s_state.items():
        c = c_state[name]
        if s.shape != c.shape:
            raise ValueError(f"cannot interpolate {name}: shapes {tuple(s.shape)} and {tuple(c.shape)} differ")
        if not s.is_floating_point():
            new_state[name] = c  # integer buffers (e.g. position ids) are not interpolated
            continue
        mixed = torch.lerp(s.float(), c.to(s.device).float(), float(lam))
        new_state[name] = mixed.to(c.dtype)
    out.load_state_dict(new_state)
    return out.eval()
