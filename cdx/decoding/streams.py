"""KV-cached forward passes over batches of rows: the only code that calls the models while decoding.

A `Stream` is one model with one cache over N rows. Two models give two streams; two contexts
on the *same* weights give one stream of 2B rows (starting rows first), so a system-prompt pair
costs one forward per token at twice the batch, which is nearly free in the memory-bound decode
regime.

Two streams on the CPU run concurrently, each model on half of the intra-op threads: a decode
step's small matrix products parallelise poorly inside one op, so two models side by side on one
thread each finish sooner than one after the other on two threads (measured in docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor
from transformers import DynamicCache


def left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[Tensor, Tensor]:
    """(ids, attention_mask), both (N, T), padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


class Stream:
    """One model, one KV cache, N rows; returns float32 next-token logits (N, V)."""

    def __init__(self, model, vocab_size: int, pad_id: int):
        self.model, self.vocab_size, self.pad_id = model, vocab_size, pad_id
        self.device = next(model.parameters()).device

    @torch.inference_mode()
    def prefill(self, rows: list[list[int]]) -> Tensor:
        ids, self.mask = left_pad(rows, self.pad_id, self.device)
        positions = (self.mask.cumsum(-1) - 1).clamp_min(0)  # left padding: real tokens start at 0
        self.next_pos = positions[:, -1:] + 1  # (N, 1)
        self.cache = DynamicCache(config=self.model.config)
        out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                         cache=self.cache, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, : self.vocab_size].float()

    @torch.inference_mode()
    def step(self, tokens: Tensor) -> Tensor:
        """Feed one token per row (N,), get the next logits (N, V)."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        out = self.model(input_ids=tokens.to(self.device)[:, None], attention_mask=self.mask,
                         position_ids=self.next_pos, cache=self.cache, use_cache=True)
        self.next_pos = self.next_pos + 1
        return out.logits[:, -1, : self.vocab_size].float()

    def repeat(self, n: int) -> None:
        """Each row becomes n consecutive rows (samples or beams of one prompt share its prefill)."""
        if n == 1:
            return
        self.cache.batch_repeat_interleave(n)
        self.mask = self.mask.repeat_interleave(n, dim=0)
        self.next_pos = self.next_pos.repeat_interleave(n, dim=0)

    def reorder(self, index: Tensor) -> None:
        """Rows become rows[index] (beam search)."""
        index = index.to(self.device)
        self.cache.reorder_cache(index)
        self.mask = self.mask[index]
        self.next_pos = self.next_pos[index]


_WORKER: dict[int, ThreadPoolExecutor] = {}


def _worker(threads: int) -> ThreadPoolExecutor:
    """One long-lived thread that runs the comparison model with `threads` intra-op threads."""
    if threads not in _WORKER:
        _WORKER[threads] = ThreadPoolExecutor(1, thread_name_prefix="cdx-comparison",
                                              initializer=torch.set_num_threads, initargs=(threads,))
    return _WORKER[threads]


class PairStreams:
    """Both sides of a pair: one shared stream or two separate ones, same interface either way."""

    def __init__(self, pair, parallel: bool | str = "auto"):
        v, pad = pair.vocab_size, pair.tokenizer.pad_token_id
        self.shared = pair.shares_weights
        self.s = Stream(pair.starting.model, v, pad)
        self.c = self.s if self.shared else Stream(pair.comparison.model, v, pad)
        on_cpu = not self.shared and self.s.device.type == "cpu" and self.c.device.type == "cpu"
        total = torch.get_num_threads()
        self.parallel = on_cpu and total >= 2 if parallel == "auto" else bool(parallel) and not self.shared
        self._split = (total - total // 2, max(1, total // 2))  # (main thread, worker thread)

    @contextlib.contextmanager
    def threads(self):
        """While decoding in parallel, the main thread keeps its share of the intra-op threads."""
        if not self.parallel:
            yield
            return
        before = torch.get_num_threads()
        torch.set_num_threads(self._split[0])
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _both(self, fn_s, fn_c):
        if not self.parallel:
            return fn_s(), fn_c()
        future = _worker(self._split[1]).submit(fn_c)
        out_s = fn_s()
        return out_s, future.result()

    def prefill(self, rows_s: list[list[int]], rows_c: list[list[int]]) -> tuple[Tensor, Tensor]:
        if self.shared:
            self.n = len(rows_s)
            logits = self.s.prefill(rows_s + rows_c)
            return logits[: self.n], logits[self.n:]
        return self._both(lambda: self.s.prefill(rows_s), lambda: self.c.prefill(rows_c))

    def step(self, tokens: Tensor) -> tuple[Tensor, Tensor]:
        if self.shared:
            logits = self.s.step(torch.cat([tokens, tokens]))
            return logits[: self.n], logits[self.n:]
        tokens_c = tokens.to(self.c.device)
        return self._both(lambda: self.s.step(tokens), lambda: self.c.step(tokens_c))

    def repeat(self, r: int) -> None:
        if self.shared:
            # rows are [s_0..s_{n-1}, c_0..c_{n-1}]; repeat_interleave keeps the two halves apart
            self.n *= r
            self.s.repeat(r)
            return
        self.s.repeat(r)
        self.c.repeat(r)

    def reorder(self, index: Tensor) -> None:
        if self.shared:
            self.s.reorder(torch.cat([index, index + self.n]))
            return
        self.s.reorder(index)
        self.c.reorder(index)
