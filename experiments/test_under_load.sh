#!/usr/bin/env bash
# The test suite on a busy machine (issue 21): N CPU-bound neighbours (busy Python loops, not
# niced: a neighbour's work competes at the same priority) beside `make test`, with the load
# average logged each minute. Usage: experiments/test_under_load.sh [N=6] [pytest args...]
# N=6 on 2 cores gives a load average of about 4 per core with the suite's own threads. The neighbours
# start WARMUP seconds (default 60) before the suite, so the load average has risen when it starts.
set -u
N=${1:-6}; shift || true
LOG=${LOAD_LOG:-load.log}
pids=()
for _ in $(seq "$N"); do python3 -c 'while True: pass' & pids+=($!); done
( while sleep 60; do echo "$(date -u +%H:%M:%S) $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOG"; done ) &
logger=$!
trap 'kill "${pids[@]}" "$logger" 2>/dev/null' EXIT
sleep "${WARMUP:-60}"
echo "$(date -u +%H:%M:%S) start, $N neighbours, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)" >> "$LOG"
make test ARGS="-q -p no:cacheprovider --durations=25 $*"
rc=$?
echo "$(date -u +%H:%M:%S) end, exit $rc" >> "$LOG"
exit $rc
