"""Teacher-forced scoring of given continuations under both models, batched and chunked.

For each row, each side sees its own prompt ids followed by the shared continuation. Rows are
left-padded, so every continuation ends at the last position on both sides: position T-1-j
predicts the j-th token from the end, and the two sides line up by that offset even when their
prompts differ in length. The LM head is applied to `chunk` positions at a time, so the full
(N, T, V) logits tensor never exists; all metrics are fused over each chunk.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cdx.decoding.streams import left_pad
from cdx.metrics.divergence import token_metrics


def _body_and_head(model):
    """(decoder body returning hidden states, function hidden -> logits) for `model`."""
    body, head = model.get_decoder(), model.get_output_embeddings()
    cap = getattr(model.config, "final_logit_softcapping", None)
    if body is None or head is None or getattr(model.config, "logit_scale", None) is not None:
        return None, None

    def logits(h: Tensor) -> Tensor:
        out = head(h)
        return torch.tanh(out / cap) * cap if cap else out

    return body, logits


@torch.inference_mode()
def _span_logits_fn(model, rows: list[list[int]], span: int, pad_id: int, vocab: int):
    """Function (lo, hi) -> float logits (N, hi-lo, V) of the `span` positions before the last token."""
    device = next(model.parameters()).device
    ids, mask = left_pad(rows, pad_id, device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    width = ids.shape[1]
    body, head = _body_and_head(model)
    if body is None:  # unusual heads: fall back to the full forward's logits
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        sl = logits[:, width - 1 - span: width - 1]
        return lambda lo, hi: sl[:, lo:hi, :vocab].float()
    hidden = body(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
    hs = hidden[:, width - 1 - span: width - 1]  # (N, span, H): positions predicting the span

    def chunk_logits(lo: int, hi: int) -> Tensor:
        # a contiguous 2-D input keeps the head a single matmul (a strided 3-D slice goes through bmm)
        h = hs[:, lo:hi].reshape(-1, hs.shape[-1])
        return head(h)[:, :vocab].float().view(hs.shape[0], hi - lo, -1)

    return chunk_logits


@torch.inference_mode()
def score_rows(
    pair,
    prompts_s: list[list[int]],
    prompts_c: list[list[int]],
    continuations: list[list[int]],
    weights: tuple[float, float] = (1.0, -1.0),
    chunk: int = 32,
) -> list[dict[str, list[float]]]:
    """Per-token metrics (`METRICS` plus logp_s, logp_c) of each continuation, one dict per row."""
    n = len(continuations)
    span = max((len(c) for c in continuations), default=0)
    if span == 0:
        return [{} for _ in range(n)]
    vocab, pad = pair.vocab_size, pair.tokenizer.pad_token_id
    rows_s = [p + c for p, c in zip(prompts_s, continuations)]
    rows_c = [p + c for p, c in zip(prompts_c, continuations)]
    if pair.shares_weights:  # one forward over both contexts
        both = _span_logits_fn(pair.starting.model, rows_s + rows_c, span, pad, vocab)
    else:
        fn_s = _span_logits_fn(pair.starting.model, rows_s, span, pad, vocab)
        fn_c = _span_logits_fn(pair.comparison.model, rows_c, span, pad, vocab)
    targets, valid = _right_aligned(continuations, span)
    parts: dict[str, list[Tensor]] = {}
    for lo in range(0, span, chunk):
        hi = min(span, lo + chunk)
        if pair.shares_weights:
            both_logits = both(lo, hi)
            ls, lc = both_logits[:n], both_logits[n:]
        else:
            ls, lc = fn_s(lo, hi), fn_c(lo, hi)
        logp_s, logp_c = torch.log_softmax(ls, -1), torch.log_softmax(lc.to(ls.device), -1)
        values = token_metrics(logp_s, logp_c, *weights)
        t = targets[:, lo:hi, None].to(ls.device)
        values["logp_s"] = logp_s.gather(-1, t).squeeze(-1)
        values["logp_c"] = logp_c.gather(-1, t).squeeze(-1)
        for k, v in values.items():
            parts.setdefault(k, []).append(v.cpu())
    full = {k: torch.cat(v, dim=1) for k, v in parts.items()}  # (N, span)
    return [{k: v[i][valid[i]].tolist() for k, v in full.items()} for i in range(n)]


def _right_aligned(conts: list[list[int]], span: int) -> tuple[Tensor, Tensor]:
    targets = torch.zeros(len(conts), span, dtype=torch.long)
    valid = torch.zeros(len(conts), span, dtype=torch.bool)
    for i, c in enumerate(conts):
        if c:
            targets[i, span - len(c):] = torch.tensor(c)
            valid[i, span - len(c):] = True
    return targets, valid
