"""One decode job for the thread/wait-policy table in docs/benchmarks.md ("Shared machines").

    python experiments/thread_contention.py THREADS           # prints the timed part's seconds
    OMP_WAIT_POLICY= python experiments/thread_contention.py 2  # libgomp's own default wait
    # beside competitors: start `python3 -c "while True: pass" &` twice (or under `nice -n 19`) first

torch is imported before cdx, so the environment alone decides the wait policy (cdx's PASSIVE default
is not applied). The default shared-weights persona pair, 8 builtin prompts x 32 tokens, timed twice after a warm-up.
"""

import os
import sys
import time

import torch

threads = int(sys.argv[1])
torch.set_num_threads(threads)
from cdx.bench import Setup, _cdx, _pairs  # noqa: E402  (after the thread count is set)
from cdx.decoding.prompts import BuiltinPrompts  # noqa: E402

shared, _ = _pairs(Setup(batch=8, tokens=32))
go = _cdx(shared, BuiltinPrompts(limit=8).load(), 32)
go()  # warm-up
t = time.perf_counter()
go()
go()
print(f"threads={threads} OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')!r} {time.perf_counter() - t:.2f}s")
