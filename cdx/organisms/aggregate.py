"""Benchmark rows from per-pair records: means over seeds with percentile-bootstrap CIs.

A record is one (pair, seed) analysis run scored by `cdx.organisms.scoring.score_run`, plus its
cost. Rows: one per pair, then `ALL planted` (Recovery@k and precision over pairs with a checker,
averaged per seed first, so each seed is one bootstrap unit) and `ALL null`.

Records written before the rubric judge existed have no `judge_recovery_at_*`, and those written
before behaviours were scored no behaviour metrics: those metrics are then None, and the Markdown
table shows their columns only when some row has a value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from cdx.organisms.records import BenchmarkRun, TableRow

BEHAVIOUR_METRICS = ("behaviour_recovery_at_1", "behaviour_recovery_at_5", "behaviours_per_change", "n_behaviours",
                     "n_word_shifts", "scope_correct")
"""The run's behaviours against the planted change (cdx.organisms.scoring.score_behaviours)."""
METRICS = ("recovery_at_1", "recovery_at_5", "precision", "n_validated", "cpu_min",
           "judge_recovery_at_1", "judge_recovery_at_5", *BEHAVIOUR_METRICS)
JUDGE_METRICS = ("judge_recovery_at_1", "judge_recovery_at_5")
"""Recovery by the rubric judge alone (task.judge=true); the other recoveries count checker OR judge."""
N_BOOT = 2000


def bootstrap_ci(values: Sequence[float], seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean; a single value gives (v, v)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if x.size == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(N_BOOT, x.size))].mean(axis=1)  # (N_BOOT,)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def _summary(values: Sequence[float | None]) -> tuple[float | None, tuple[float | None, float | None]]:
    """(mean, bootstrap CI) of the values that are not None; (None, (None, None)) when none is."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, (None, None)
    return float(np.mean(vals)), bootstrap_ci(vals)


def table_rows(records: Sequence[dict | BenchmarkRun]) -> list[TableRow]:
    """One row per pair (mean and CI of each metric over its seeds), then the two ALL rows."""
    runs = [BenchmarkRun.model_validate(r) for r in records]
    by_pair: dict[str, list[BenchmarkRun]] = defaultdict(list)
    for r in runs:
        by_pair[r.organism].append(r)
    rows = [_row(name, rs[0].kind, rs[0].expected, {m: [getattr(r, m) for r in rs] for m in METRICS}, len(rs))
            for name, rs in sorted(by_pair.items())]
    rows += _all_rows(runs)
    return rows


def _row(name: str, kind: str, expected: str, values: dict[str, list], n_seeds: int) -> TableRow:
    stats = {m: _summary(vals) for m, vals in values.items()}
    return TableRow(pair=name, kind=kind, expected=expected, n_seeds=n_seeds,
                    **{k: v for m, (mean, ci) in stats.items() for k, v in ((m, mean), (f"{m}_ci", ci))})


def _all_rows(runs: Sequence[BenchmarkRun]) -> list[TableRow]:
    """Planted pairs averaged within each seed, then over seeds; null pairs the same."""
    out = []
    for label, expected in (("ALL planted", "behaviour"), ("ALL null", "none")):
        rs = [r for r in runs if r.expected == expected]
        if not rs:
            continue
        by_seed: dict[int, list[BenchmarkRun]] = defaultdict(list)
        for r in rs:
            by_seed[r.seed].append(r)
        values = {m: [_mean([getattr(r, m) for r in group]) for group in by_seed.values()] for m in METRICS}
        out.append(_row(label, "-", expected, values, len(by_seed)))
    return out


def _mean(vals: list) -> float | None:
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def display_rows(rows: Sequence[TableRow]) -> list[dict[str, str | int]]:
    """Rows for the Markdown table (column -> cell): 'mean [lo, hi]' strings."""
    def fmt(v, ci) -> str:
        if v is None:
            return "-"
        return f"{v:.2f}" if ci[0] is None or ci[0] == ci[1] else f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"

    optional = [ms for ms in (JUDGE_METRICS, BEHAVIOUR_METRICS)
                if not any(r.metric(m)[0] is not None for r in rows for m in ms)]  # columns no row has
    shown = [m for m in METRICS if not any(m in ms for ms in optional)]
    return [{"pair": r.pair, "kind": r.kind, "expected": r.expected, "seeds": r.n_seeds,
             **{m: fmt(*r.metric(m)) for m in shown}} for r in rows]
