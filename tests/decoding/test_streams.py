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
