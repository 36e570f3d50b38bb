"""Coarser quantization of the same weights: round-to-nearest, symmetric, per output channel.

The embedded model ships as GGUF Q4_1 (4-bit, one scale and offset per 32 weights). Fake-quantising
every linear layer's de-quantized weights again to `bits` bits with ONE scale per output channel
(row) is coarser, so the comparison model is the same weights at a lower precision. Embeddings
and the (tied) output head keep their precision, as usual for weight-only quantization.
"""

from __future__ import annotations

import torch


def fake_quantize_(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Quantise-dequantise `weight` (out, in) in place; returns it. Levels: -(2^(b-1)-1) .. 2^(b-1)-1."""
    if not 2 <= bits <= 8:
        raise ValueError(f"bits={bits} is not valid; use 2..8")
    qmax = 2 ** (bits - 1) - 1
    scale = weight.abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / qmax  # (out, 1)
    weight.copy_((weight / scale).round().clamp(-qmax, qmax) * scale)
    return weight


def quantize_model_(model, bits: int) -> int:
    """Fake-quantise every nn.Linear except the output head; the number of matrices changed."""
    head = model.get_output_embeddings()
    n = 0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module is not head:
                fake_quantize_(module.weight.data, bits)
                n += 1
    return n
