"""Teacher-forced scoring of given continuations under both models, batched and chunked.

For each row, each side sees its own prompt ids followed by the shared continuation. Rows are
left-padded, so every continuation ends at the last position on both sides: position T-1-j
predicts the j-th token from the end, and the two sides line up by that offset even when their
prompts differ in length. The LM head is applied to `chunk` positions at a time, so the full
(N, T, V) logits tensor never exists; all metrics are fused over each chunk.

Two models on the CPU run side by side on their own worker threads (as in decoding, see
`cdx.decoding.streams`): each side's body, head chunks and log-softmax run in parallel, and only
the metrics, which need both sides, run on the caller's thread.
"""

from __future__ import annotations

import torch
from torch import Tensor

from cdx.decoding.streams import left_pad, parallel_mode, side_worker, total_threads
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

    @torch.inference_mode()  # also when called later, from a side's worker thread
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
    parallel: bool | str = "auto",
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
        side_chunks = lambda lo, hi: (lambda x: (_log_probs(x[:n]), _log_probs(x[n:])))(both(lo, hi))  # noqa: E731
    else:
        run = _runner(parallel_mode(pair, parallel))
        fn_s, fn_c = run(lambda: _span_logits_fn(pair.starting.model, rows_s, span, pad, vocab),
                         lambda: _span_logits_fn(pair.comparison.model, rows_c, span, pad, vocab))
        side_chunks = lambda lo, hi: run(lambda: _log_probs(fn_s(lo, hi)), lambda: _log_probs(fn_c(lo, hi)))  # noqa: E731
    targets, valid = _right_aligned(continuations, span)
    parts: dict[str, list[Tensor]] = {}
    for lo in range(0, span, chunk):
        hi = min(span, lo + chunk)
        (logp_s, p_s), (logp_c, p_c) = side_chunks(lo, hi)
        logp_c = logp_c.to(logp_s.device)
        probs = None if p_s is None or p_c is None else (p_s, p_c.to(logp_s.device))
        values = token_metrics(logp_s, logp_c, *weights, probs=probs)
        t = targets[:, lo:hi, None].to(logp_s.device)
        values["logp_s"] = logp_s.gather(-1, t).squeeze(-1)
        values["logp_c"] = logp_c.gather(-1, t).squeeze(-1)
        for k, v in values.items():
            parts.setdefault(k, []).append(v.cpu())
    full = {k: torch.cat(v, dim=1) for k, v in parts.items()}  # (N, span)
    return [{k: v[i][valid[i]].tolist() for k, v in full.items()} for i in range(n)]


def _log_probs(logits: Tensor) -> tuple[Tensor, Tensor | None]:
    """(log p, p) of (N, L, V) logits; p is None when log p holds -inf (token_metrics then guards 0 log 0)."""
    with torch.inference_mode():
        logp = torch.log_softmax(logits, -1)
        return logp, (None if logp.amin() == float("-inf") else logp.exp())


def _runner(mode: str):
    """Function (fn_s, fn_c) -> (fn_s(), fn_c()): side by side on the side workers, or in turn."""
    if not mode.startswith("threads"):
        return lambda fn_s, fn_c: (fn_s(), fn_c())
    total = total_threads()
    workers = side_worker("starting", total - total // 2), side_worker("comparison", max(1, total // 2))

    def run(fn_s, fn_c):
        futures = workers[0].submit(fn_s), workers[1].submit(fn_c)
        return futures[0].result(), futures[1].result()

    return run


def _right_aligned(conts: list[list[int]], span: int) -> tuple[Tensor, Tensor]:
    targets = torch.zeros(len(conts), span, dtype=torch.long)
    valid = torch.zeros(len(conts), span, dtype=torch.bool)
    for i, c in enumerate(conts):
        if c:
            targets[i, span - len(c):] = torch.tensor(c)
            valid[i, span - len(c):] = True
    return targets, valid
