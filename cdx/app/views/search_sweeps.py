"""Search and sweeps: a search run's bank and per-cycle charts; a sweep's summary table and plots."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from cdx.app import plots
from cdx.app.jobs_view import jobs_panel
from cdx.app.runs import flat_numbers, load_search, load_sweep_table, run_kind, sweep_summary_dir
from cdx.app.state import guard, jobs, pick_run

BANK_COLUMNS = ("id", "divergence", "diversity", "criterion", "cycle", "repeat", "prompt")


def bank_table(bank: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame([{k: e.get(k) for k in BANK_COLUMNS} for e in bank])
    table["first response"] = [(e.get("responses") or [""])[0] for e in bank]
    return table.sort_values("divergence", ascending=False)


def cycle_table(stats: list[dict]) -> pd.DataFrame:
    """One row per cycle (failed ones included), every number of stats.jsonl as a column."""
    rows = [{"cycle": i + 1, "ok": bool(s.get("ok")), **flat_numbers(s)} for i, s in enumerate(stats)]
    return pd.DataFrame(rows)


def search_view(path: Path) -> None:
    loaded = guard(load_search, path)
    if loaded is None:
        return
    bank, stats, summary = loaded
    if summary:
        st.json(summary, expanded=False)
    st.caption(f"{len(bank)} prompts in the bank · {len(stats)} cycles logged")
    if bank:
        st.dataframe(bank_table(bank), width="stretch", hide_index=True, height=320)
    cycles = cycle_table(stats)
    numeric = [c for c in cycles.columns if c not in ("cycle", "ok", "repeat", "attempt", "seed")
               and pd.api.types.is_numeric_dtype(cycles[c])]
    if numeric:
        default = [c for c in numeric if c.endswith("divergence/mean")][:3] or numeric[:1]
        shown = st.multiselect("Per-cycle values", numeric, default=default, key="ss_cycle_cols")
        if shown:
            plots.show(plots.cycle_curves(cycles, shown), "ss_cycles", cycles[["cycle", "ok", *shown]])


def sweep_view(path: Path) -> None:
    folder = guard(sweep_summary_dir, path)
    if folder is None:
        st.info("This sweep has no summary table yet: task=summarize collects every job's summary.json.")
        sweep = path if (path / "multirun.yaml").is_file() else path.parent
        if st.button("Summarize this sweep", key="ss_summarize"):
            jobs().start_overrides(["task=summarize", f"sweep_dir={sweep}"], sweep / "summary", "summarize")
        jobs_panel(("summarize",))
        return
    table = guard(load_sweep_table, folder)
    if table is None:
        return
    st.dataframe(table, width="stretch", hide_index=True)
    numeric = [c for c in table.columns if pd.api.types.is_numeric_dtype(table[c]) and c != "job"]
    if not numeric:
        return
    swept = [c for c in numeric if "." in c] or numeric[:1]  # swept keys are dotted Hydra keys
    x = st.selectbox("x axis (swept value)", numeric, index=numeric.index(swept[0]), key="ss_x")
    metrics = [c for c in numeric if c != x]
    ys = st.multiselect("Metrics", metrics, default=[m for m in metrics if m.endswith("_mean")][:3] or metrics[:1],
                        key="ss_y")
    if ys:  # a 95% band for each metric whose CI columns the table has (kl_sc_ci95_low/high by default)
        plots.show(plots.sweep_curves(table, x, ys), "ss_sweep", table)


def page() -> None:
    st.title("Search and sweeps")
    path = pick_run(("search", "sweep", "sweep_summary"), "sweeps")
    if path is None:
        st.info("Choose a search run (task=search) or a sweep folder (multirun/...), or type its path.")
        return
    kind = guard(run_kind, path)
    if kind is None:
        return
    if kind == "search":
        search_view(path)
    elif kind in ("sweep", "sweep_summary"):
        sweep_view(path)
    else:
        st.error(f"{path} is a {kind} run; this page shows search runs and sweeps "
                 f"({'open it in the Run explorer' if kind in ('decode', 'score') else 'see its own page'}).")


page()
