"""Paired samples: every held-out prompt of an analysis run, starting | comparison, sliced by cluster and finding.

Like LLM Comparator's side-by-side table, over cdx's own held-out plain samples: each text is
tagged with the findings it satisfies and their matched words are marked; a slice (one prompt
cluster, one finding) shows its own rates, so one sees where a difference lives.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cdx.app.paired import pair_rows
from cdx.app.runs import AnalysisRun, Checker, PairedSample, finding_checkers, load_analysis, slice_rates
from cdx.app.state import guard, pick_run

PAGE_SIZE = 10
ALL = "all"


def rates_table(pairs: list[PairedSample], checkers: dict[str, Checker], labels: dict[str, str]) -> pd.DataFrame:
    """One row per finding: how many starting and comparison texts of these pairs show it."""
    rows = []
    for fid, checker in checkers.items():
        n, k_s, k_c = slice_rates(pairs, checker)
        rows.append({"finding": labels[fid], "starting": f"{k_s}/{n}", "comparison": f"{k_c}/{n}",
                     "rate_s": k_s / n if n else float("nan"), "rate_c": k_c / n if n else float("nan"),
                     "difference": (k_c - k_s) / n if n else float("nan")})
    return pd.DataFrame(rows)


def slice_pairs(run: AnalysisRun, cluster: str, checker: Checker | None) -> list[PairedSample]:
    """The pairs of one cluster (or all) where the chosen finding shows on either side (or every pair)."""
    pairs = [p for p in run.pairs if cluster == ALL or p.cluster == cluster]
    if checker is not None:
        pairs = [p for p in pairs if checker.check(p.text_s) or checker.check(p.text_c)]
    return pairs


def page() -> None:
    st.title("Paired samples")
    path = pick_run(("analyze",), "paired")
    if path is None:
        st.info("Choose an analysis run (task=analyze), or type the path of one.")
        return
    run = guard(load_analysis, path)
    if run is None:
        return
    if not run.pairs:
        st.info(f"{run.path} has no held-out samples to pair (validation.jsonl is missing or empty): "
                "the analysis stopped before validation, or was made before it kept them.")
        return
    checkers = finding_checkers(run.findings)
    labels = {f.id: f.statement for f in run.findings}  # tags carry their own ✔ (paired.text_card)
    shown_as = {fid: ("✔ " if fid in {f.id for f in run.findings if f.validated} else "") + s
                for fid, s in labels.items()}
    validated = {f.id for f in run.findings if f.validated}
    c1, c2 = st.columns(2)
    clusters = sorted({p.cluster for p in run.pairs if p.cluster})
    cluster = c1.selectbox("Prompt cluster", [ALL, *clusters], key="pv_cluster")
    fid = c2.selectbox("Only texts showing", [ALL, *checkers], key="pv_finding",
                       format_func=lambda i: "any finding (every pair)" if i == ALL else shown_as[i])
    in_cluster = slice_pairs(run, cluster, None)
    st.caption(f"rates in this slice ({len(in_cluster)} held-out pairs"
               f"{'' if cluster == ALL else f' of cluster {cluster}'}):")
    st.dataframe(rates_table(in_cluster, checkers, shown_as), width="stretch", hide_index=True,
                 column_config={k: st.column_config.NumberColumn(format="%.2f")
                                for k in ("rate_s", "rate_c", "difference")})
    shown = slice_pairs(run, cluster, checkers.get(fid))
    st.caption(f"{len(shown)} of {len(run.pairs)} pairs shown")
    n_pages = max(1, -(-len(shown) // PAGE_SIZE))
    page_no = st.number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="pv_page") if n_pages > 1 else 1
    pair_rows(shown[(page_no - 1) * PAGE_SIZE: page_no * PAGE_SIZE], checkers, labels, validated)


page()
