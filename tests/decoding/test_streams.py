"""Side workers' thread budgets (cdx.decoding.streams)."""

import torch

from cdx.decoding.streams import side_worker


def test_a_side_worker_keeps_its_thread_count_after_the_process_default_is_put_back():
    # ATen sets a thread's count up lazily, on its first parallel op, from the process default:
    # a worker that only called set_num_threads took the default back on its first op
    before = torch.get_num_threads()
    torch.set_num_threads(3)  # a default unlike the worker's, whatever the machine's core count
    try:
        worker = side_worker("test-thread-count", 1)
        assert torch.get_num_threads() == 3  # the caller's own count is put back
        assert worker.submit(torch.get_num_threads).result() == 1
        big_op = lambda: (torch.ones(1 << 20).add_(1).sum(), torch.get_num_threads())[1]  # noqa: E731
        assert worker.submit(big_op).result() == 1
    finally:
        torch.set_num_threads(before)


def _fresh_thread_count() -> int:
    import threading

    out = []
    t = threading.Thread(target=lambda: out.append(torch.get_num_threads()))
    t.start()
    t.join()
    return out[0]


def test_a_worker_made_from_inside_another_worker_leaves_both_counts_alone():
    # the decode driver (one thread) creates the side workers: putting "its" count back as the
    # process default would start every later thread of the process on one thread
    default = _fresh_thread_count()
    outer = side_worker("test-outer", 1)

    def make_inner():
        side_worker("test-inner", 2)
        return torch.get_num_threads()

    assert outer.submit(make_inner).result() == 1
    assert side_worker("test-inner", 2).submit(torch.get_num_threads).result() == 2
    assert _fresh_thread_count() == default


def test_an_interrupted_two_model_decode_stops_its_driver_within_a_step(tiny_pair, ctrl_c):
    """Two-model pairs decode on the driver worker; Ctrl-C in the caller must not leave it running
    the rest of the batch (a process waits for its workers at exit)."""
    import os
    import signal
    import time

    import pytest

    from cdx.decoding import ContrastiveDecoder, ProbDiff

    calls = []

    class InterruptingRule(ProbDiff):
        def __call__(self, logp_s, logp_c, probs=None):
            calls.append(1)
            if len(calls) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, while the caller waits for the batch
            return super().__call__(logp_s, logp_c, probs=probs)

    dec = ContrastiveDecoder(tiny_pair, InterruptingRule(), max_new_tokens=400, min_new_tokens=400,
                             stop_at_eos=False, parallel=True)
    with pytest.raises(KeyboardInterrupt):
        dec.generate_batch(["Hello there"])
    time.sleep(0.5)
    stopped_at = len(calls)
    time.sleep(0.5)
    assert len(calls) == stopped_at < 50  # stopped, far short of 400 steps
    again = ContrastiveDecoder(tiny_pair, ProbDiff(), max_new_tokens=3, parallel=True).generate_batch(["Hi"])
    assert len(again[0].token_ids) >= 1  # the driver is free for the next batch
