"""KV-cached forward passes over batches of rows: the only code that calls the models while decoding.

A `Stream` is one model with one cache over N rows. Two models give two streams; two contexts
on the *same* weights give one stream of 2B rows (starting rows first), so a system-prompt pair
costs one forward per token at twice the batch, which is nearly free in the memory-bound decode
regime.

Two streams on the CPU run concurrently, each model on half of the intra-op threads: a decode
step's small matrix products parallelise poorly inside one op, so two models side by side on one
thread each finish sooner than one after the other on two threads (measured in docs/benchmarks.md).
That includes a base model against the same base with a LoRA adapter: the adapter side is a view
that shares the base's weight tensors (see `cdx.models.adapters`), so both run side by side over
one copy of the weights.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
    """One model, one KV cache, N rows; returns float32 next-token logits (N, V).

    `row_kwargs`, if given, returns extra forward arguments for the current rows (the adapter of
    each row in a mixed base/adapter batch); `context`, if given, returns a context manager that
    each forward runs in (a lock, or the rows that get the adapter).
    """

    def __init__(self, model, vocab_size: int, pad_id: int, row_kwargs: Callable[[], dict] | None = None,
                 context: Callable[[], Any] | None = None):
        self.model, self.vocab_size, self.pad_id = model, vocab_size, pad_id
        self.device = next(model.parameters()).device
        self.row_kwargs, self.context = row_kwargs or dict, context or contextlib.nullcontext

    @torch.inference_mode()
    def prefill(self, rows: list[list[int]]) -> Tensor:
        ids, self.mask = left_pad(rows, self.pad_id, self.device)
        positions = (self.mask.cumsum(-1) - 1).clamp_min(0)  # left padding: real tokens start at 0
        self.next_pos = positions[:, -1:] + 1  # (N, 1)
        self.cache = DynamicCache(config=self.model.config)
        with self.context():
            out = self.model(input_ids=ids, attention_mask=self.mask, position_ids=positions,
                             cache=self.cache, use_cache=True, logits_to_keep=1, **self.row_kwargs())
        return out.logits[:, -1, : self.vocab_size].float()

    @torch.inference_mode()
    def step(self, tokens: Tensor) -> Tensor:
        """Feed one token per row (N,), get the next logits (N, V)."""
        self.mask = torch.cat([self.mask, self.mask.new_ones((self.mask.shape[0], 1))], dim=1)
        with self.context():
            out = self.model(input_ids=tokens.to(self.device)[:, None], attention_mask=self.mask,
                             position_ids=self.next_pos, cache=self.cache, use_cache=True, **self.row_kwargs())
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
        self.cache.reorder_cache(index)  # type: ignore[arg-type]  # a LongTensor (index of rows)
        self.mask = self.mask[index]
        self.next_pos = self.next_pos[index]


# ---- thread budget: safe when one process serves several runs at once ----------------------
#
# torch.set_num_threads sets the *calling thread's* OpenMP count and also a process-wide default
# that every thread created later starts from. Flipping it around a decode in a request thread
# (as round 1 did) races with any other run in the process: a thread created meanwhile starts
# with the flipped count. So no request thread ever changes its count here: each side of a CPU
# pair runs on its own long-lived worker thread whose count is set once, when it is created,
# under a lock, after which the process-wide default is put back. The decode loop of such a pair
# runs on a one-thread "driver" worker of its own (`ContrastiveDecoder.generate_batch`).

_WORKERS: dict[tuple[str, int], ThreadPoolExecutor] = {}
_WORKERS_LOCK = threading.Lock()
_TOTAL_THREADS: list[int] = []


def total_threads() -> int:
    """The process's intra-op thread budget, read once (later per-thread changes do not move it)."""
    with _WORKERS_LOCK:
        if not _TOTAL_THREADS:
            _TOTAL_THREADS.append(_process_default())
        return _TOTAL_THREADS[0]


def set_total_threads(threads: int) -> None:
    """The thread budget chosen for this process's runs (`cdx.runtime.configure`, at a run's start)."""
    with _WORKERS_LOCK:
        _TOTAL_THREADS[:] = [threads]


def _in_fresh_thread(fn: Callable[[], Any]) -> Any:
    out = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join()
    return out[0]


def _process_default() -> int:
    """The count a new thread starts from: read in a new thread, so the caller's own count (a side
    worker's, say) is never taken for it."""
    return _in_fresh_thread(torch.get_num_threads)


def _hold_threads(threads: int) -> None:
    """Give the calling thread `threads` intra-op threads, for good.

    ATen sets up each thread's count lazily, on its first parallel op, from the process-wide
    default, and `set_num_threads` does not count as that set-up. So a worker that only set its
    count would take the default back (put back by `side_worker`) on its first op: each side
    of a "threads-1+1" pair ran two threads, four on two cores, and libgomp, seeing more threads
    than CPUs, stopped spinning for every team in the process (one-batch forwards on the main
    thread ran ~20% slower after any two-model decode). `get_num_threads` runs the set-up now.
    """
    torch.set_num_threads(threads)
    if torch.get_num_threads() != threads:
        raise RuntimeError(f"a cdx side worker asked for {threads} intra-op threads and got {torch.get_num_threads()}")


def side_worker(role: str, threads: int) -> ThreadPoolExecutor:
    """One long-lived thread that runs side `role` of CPU pairs with `threads` intra-op threads.

    Shared by every decoder in the process: two runs decoding at once take turns per call, each
    call touching only its own streams, so results never mix.
    """
    key = (role, threads)
    with _WORKERS_LOCK:
        if key not in _WORKERS:
            default = _process_default()
            pool = ThreadPoolExecutor(1, thread_name_prefix=f"cdx-{role}", initializer=_hold_threads,
                                      initargs=(threads,))
            pool.submit(int).result()  # run the initializer now, while the lock is held
            # put the process-wide default back from a throwaway thread: set_num_threads also sets
            # its caller's count, and the caller may be a side worker (the driver) with its own
            _in_fresh_thread(lambda: torch.set_num_threads(default))
            _WORKERS[key] = pool
        return _WORKERS[key]


def parallel_mode(pair, parallel: bool | str = "auto", adapter_batch: bool | None = None) -> str:
    """How a pair's two sides run.

    `one-batch`: shared weights, both contexts as one batch of 2B rows. `one-batch-adapter`: base
    vs base + adapter as one batch over the adapter view, the adapter enabled per row (PEFT's
    mixed-adapter batches): the base weights are read once per step for both sides, and the
    LoRA runs on the adapter rows only. The default for adapter pairs (it measured faster than
    two passes, and than two separate models, in docs/benchmarks.md); `adapter_batch=False`
    gives two passes over the shared base instead. `threads-A+B`: two models side by side on CPU
    worker threads. `sequential`: one after the other.
    """
    if pair.shares_weights:
        return "one-batch"
    devices = {next(m.parameters()).device.type for m in (pair.starting.model, pair.comparison.model)}
    rows = adapter_of_rows(pair) if adapter_batch is not False else None
    if rows is not None and _row_batch_supported(rows[2]):
        return "one-batch-adapter"
    total = total_threads()
    on = (devices == {"cpu"} and total >= 2) if parallel == "auto" else bool(parallel)
    if not on:
        return "sequential"
    return f"threads-{total - total // 2}+{max(1, total // 2)}"


def _row_batch_supported(view) -> bool:
    """cdx's row-range LoRA applies, or else PEFT's mixed batch does (PEFT refuses it for DoRA and
    other LoRA variants: those pairs run as two passes)."""
    from peft.tuners.lora.layer import LoraLayer

    from cdx.models.adapters import row_split

    return row_split(view) is not None or not any(
        getattr(m, "lora_variant", None) for m in view.modules() if isinstance(m, LoraLayer))


def adapter_of_rows(pair) -> tuple[str, str, Any] | None:
    """(starting rows' adapter, comparison rows' adapter, view) when one side is a PEFT adapter view
    over the other side's own weights, else None. "__base__" is PEFT's name for "no adapter"."""
    from cdx.models.adapters import is_adapter_view, unique_param_bytes

    s, c = pair.starting.model, pair.comparison.model
    for view, bare, view_first in ((c, s, False), (s, c, True)):
        if is_adapter_view(view) and not is_adapter_view(bare) and len(view.peft_config) == 1:
            if unique_param_bytes(view, bare) == unique_param_bytes(view):  # every base tensor is shared
                name = next(iter(view.peft_config))
                return (name, "__base__", view) if view_first else ("__base__", name, view)
    return None


class PairStreams:
    """Both sides of a pair: one shared stream or two separate ones, same interface either way.

    `then`, if given to `prefill`/`step`, is applied to each side's (N, V) logits where they were
    computed (on that side's worker thread when running in parallel), so per-side work such as
    log-softmax runs side by side too.
    """

    def __init__(self, pair, parallel: bool | str = "auto", adapter_batch: bool | None = None):
        v, pad = pair.vocab_size, pair.tokenizer.pad_token_id
        self.mode = parallel_mode(pair, parallel, adapter_batch)
        self.shared = self.mode.startswith("one-batch")
        self.n = 0
        if self.mode == "one-batch-adapter":
            self.s = self._adapter_stream(pair, v, pad)
        else:
            self.s = Stream(pair.starting.model, v, pad)
        self.c = self.s if self.shared else Stream(pair.comparison.model, v, pad)
        self.parallel = self.mode.startswith("threads")
        if self.parallel:
            total = total_threads()
            self._workers = (side_worker("starting", total - total // 2), side_worker("comparison", max(1, total // 2)))

    def _adapter_stream(self, pair, v: int, pad: int) -> Stream:
        """One stream over the adapter view, rows [s_0..s_{n-1}, c_0..c_{n-1}], the LoRA on one half."""
        from cdx.models.adapters import forward_lock, row_split

        found = adapter_of_rows(pair)
        assert found is not None  # the mode is "adapter" only when the pair is one
        names_s, names_c, view = found
        split = row_split(view)
        if split is not None:  # cdx's row-range LoRA: no per-call hooks, no lock (thread-local)
            half = (lambda: (0, self.n)) if names_c == "__base__" else (lambda: (self.n, 2 * self.n))
            return Stream(view, v, pad, context=lambda: split.rows(*half()))
        # PEFT's mixed-adapter batch: the first half runs names_s, the second names_c
        rows = lambda: {"adapter_names": [names_s] * self.n + [names_c] * self.n}  # noqa: E731
        lock = forward_lock(view)
        return Stream(view, v, pad, row_kwargs=rows, context=lambda: lock)

    def _both(self, fn_s: Callable[[], Any], fn_c: Callable[[], Any]) -> tuple[Any, Any]:
        return self.submit_both(fn_s, fn_c)()

    def submit_both(self, fn_s: Callable[[], Any], fn_c: Callable[[], Any]) -> Callable[[], tuple[Any, Any]]:
        """Start fn_s and fn_c (on the two side workers in parallel mode); the result waits for both."""
        if not self.parallel:
            out = fn_s(), fn_c()
            return lambda: out
        future_s, future_c = self._workers[0].submit(fn_s), self._workers[1].submit(fn_c)
        return lambda: (future_s.result(), future_c.result())

    def prefill(self, rows_s: list[list[int]], rows_c: list[list[int]], then: Callable | None = None):
        then = then or _identity
        if self.shared:
            self.n = len(rows_s)
            logits = self.s.prefill(rows_s + rows_c)
            return then(logits[: self.n]), then(logits[self.n:])
        return self._both(lambda: then(self.s.prefill(rows_s)), lambda: then(self.c.prefill(rows_c)))

    def step(self, tokens: Tensor, then: Callable | None = None):
        return self.step_async(tokens, then)()

    def step_async(self, tokens: Tensor, then: Callable | None = None) -> Callable[[], tuple[Any, Any]]:
        """Start one step; the returned function waits for and returns both sides' results.

        In parallel mode the caller is free while both models run (the decoder draws its next
        sampling noise then); otherwise the step is done before this returns.
        """
        then = then or _identity
        if self.shared:
            logits = self.s.step(torch.cat([tokens, tokens]))
            out = then(logits[: self.n]), then(logits[self.n:])
            return lambda: out
        tokens_c = tokens.to(self.c.device)
        return self.submit_both(lambda: then(self.s.step(tokens)), lambda: then(self.c.step(tokens_c)))

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


def _identity(x):
    return x
