"""cdx: find out, and prove, how two language models behave differently."""

import os

# libgomp reads its wait policy once, when torch loads it, so this must come before any torch import.
# Passive: a thread waiting at the end of a parallel region sleeps instead of spinning. On an idle
# machine it costs ~6% of a shared-weights decode; beside 2 CPU-bound processes a spinning team
# burns the CPU its parked member needs: 12-187 s where passive took 9-10 s (idle: 5 s;
# docs/benchmarks.md, "Shared machines").
# A user's own OMP_WAIT_POLICY wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
