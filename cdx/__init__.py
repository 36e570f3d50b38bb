"""cdx: find out, and prove, how two language models behave differently."""

import os

# libgomp reads its wait policy once, when torch loads it, so this must come before any torch import.
# Passive: a thread waiting at the end of a parallel region sleeps instead of spinning. On an idle
# machine it costs nothing measurable; beside other busy processes a spinning team burns the CPU its
# parked member needs (a 2-thread decode took 140 s spinning, 19 s passive, docs/benchmarks.md).
# A user's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
