"""Run explorer: the texts of a decode or score run, sortable, filterable, shaded token by token."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from cdx.app import plots, render
from cdx.app.runs import TextRun
from cdx.app.state import guard, pick_run, text_run

PAGE_SIZES = (10, 20, 50)
TEXT_COLUMNS = ("id", "prompt", "continuation", "finish_reason")
DEFAULT_DISTRIBUTION = ("kl_sc_mean", "kl_cs_mean", "js_mean")  # KL first: the divergence researchers read


def numeric_columns(table: pd.DataFrame) -> list[str]:
    return [c for c in table.columns if c not in TEXT_COLUMNS and pd.api.types.is_numeric_dtype(table[c])]


def filter_table(table: pd.DataFrame, contains: str, ranges: dict[str, tuple[float, float]], query: str) -> pd.DataFrame:
    """Rows whose prompt or continuation contains `contains`, inside every range, matching `query`."""
    out = table
    if contains:
        hit = out["prompt"].str.contains(contains, case=False, regex=False) | \
            out["continuation"].str.contains(contains, case=False, regex=False)
        out = out[hit]
    for col, (lo, hi) in ranges.items():
        out = out[out[col].between(lo, hi)]
    if query.strip():
        out = out.query(query)  # pandas syntax, e.g. `kl_sc_mean > 0.5 and finish_reason == "eos"`
    return out


def page_rows(table: pd.DataFrame, sort_by: str, descending: bool, page: int, size: int) -> pd.DataFrame:
    ordered = table.sort_values(sort_by, ascending=not descending, kind="stable", na_position="last")
    return ordered.iloc[(page - 1) * size: page * size]


def _filters(run: TextRun) -> pd.DataFrame:
    numeric = numeric_columns(run.table)
    with st.expander("Filter", expanded=False):
        contains = st.text_input("Prompt or continuation contains", key="ex_contains")
        chosen = st.multiselect("Range filters on metrics", numeric, key="ex_range_cols")
        ranges = {}
        for col in chosen:
            lo, hi = float(run.table[col].min()), float(run.table[col].max())
            if lo < hi:
                ranges[col] = st.slider(col, lo, hi, (lo, hi), key=f"ex_range_{col}")
        query = st.text_input("Query (pandas syntax)", key="ex_query",
                              placeholder='kl_sc_mean > 0.5 and finish_reason == "eos"')
    try:
        return filter_table(run.table, contains, ranges, query)
    except Exception as e:  # noqa: BLE001 - any bad query is the user's input: say so, keep the page
        st.error(f"The query {query!r} is not valid pandas syntax over the columns "
                 f"{', '.join(run.table.columns)}: {e}")
        return run.table


def texts_tab(run: TextRun) -> None:
    numeric = numeric_columns(run.table)
    if not numeric:
        st.info("No texts in this run yet.")
        return
    default_sort = (run.summary.sort_key if run.summary else None) or "kl_sc_mean"
    token_metrics = list(run.records[0].get("tokens", {})) if run.records else []
    c1, c2, c3 = st.columns(3)
    sort_by = c1.selectbox("Sort by", numeric, index=numeric.index(default_sort) if default_sort in numeric else 0,
                           key="ex_sort")
    descending = c2.toggle("Descending", value=True, key="ex_desc")
    metric = c3.selectbox("Shade tokens by", token_metrics, key="ex_metric") if token_metrics else None
    table = _filters(run)
    st.caption(f"{len(table)} of {len(run.table)} texts")
    st.dataframe(table.drop(columns=["continuation"]), height=260, width="stretch", hide_index=True)
    if table.empty:
        return
    p1, p2 = st.columns(2)
    size = p1.selectbox("Texts per page", PAGE_SIZES, index=1, key="ex_size")
    n_pages = -(-len(table) // size)
    page = p2.number_input(f"Page (of {n_pages})", 1, n_pages, 1, key="ex_page")
    rows = page_rows(table, sort_by, descending, int(page), size)
    _cards(run, rows, sort_by, metric)


def _cards(run: TextRun, rows: pd.DataFrame, sort_by: str, metric: str | None) -> None:
    scale = render.run_scale(run.records, metric) if metric else 1.0
    st.markdown(render.TOKEN_CSS, unsafe_allow_html=True)
    for idx, row in rows.iterrows():
        rec = run.records[idx]
        head = f"**{row['id']}** · {sort_by}={row[sort_by]:.4g} · {row['finish_reason']}"
        st.markdown(head)
        if metric:
            st.markdown(render.text_html(rec, metric, scale), unsafe_allow_html=True)
    ids = list(rows["id"])
    chosen = st.selectbox("Divergence along a text", ids, key="ex_plot_id")
    if chosen is not None and metric:
        rec = run.records[rows.index[ids.index(chosen)]]
        shown = [m for m in ("kl_sc", "kl_cs", "js") if m in rec.get("tokens", {})] or [metric]
        if not rec.get("top_next"):
            st.plotly_chart(render.token_plot(rec, shown), key="ex_token_plot")
            st.caption("Decode with decoding.record_top_k=5 to see both models' most likely tokens at each position.")
            return
        event = st.plotly_chart(render.token_plot(rec, shown), key="ex_token_plot", on_select="rerun",
                                selection_mode="points")
        _alternatives(rec, event)


def _alternatives(rec: dict, event) -> None:
    """Both models' top tokens at the position clicked in the plot (or chosen in the list)."""
    points = event.selection.points if event is not None and event.selection else []
    n = len(rec.get("token_strs", []))
    if points and 0 <= int(points[0]["x"]) < n:
        st.session_state["ex_alt_pos"] = int(points[0]["x"])
    toks = rec.get("token_strs", [])
    pos = st.selectbox("Both models' top tokens at position (click a point, or a token above)", range(n),
                       format_func=lambda i: f"{i}: {toks[i]!r}", key="ex_alt_pos")
    table = render.top_next_table(rec, int(pos or 0))
    if table is not None:
        st.dataframe(table, hide_index=True, width="stretch")


def distributions_tab(run: TextRun) -> None:
    numeric = numeric_columns(run.table)
    if not numeric:
        return
    default = next((m for m in DEFAULT_DISTRIBUTION if m in numeric), numeric[0])
    metric = st.selectbox("Per-text metric", numeric, index=numeric.index(default), key="ex_hist_metric")
    plots.show(plots.histogram(run.table, metric), "ex_hist", run.table[["id", metric]])
    token_metrics = [m for m in ("kl_sc", "kl_cs", "js") if run.records and m in run.records[0].get("tokens", {})]
    if token_metrics:
        by = st.selectbox("Divergence by position", token_metrics, key="ex_pos_metric")
        profile = _profile(run, by)
        plots.show(plots.position_plot(profile, by), "ex_position", profile)
    kl = next((m for m in ("kl_sc_mean", "kl_cs_mean", "js_mean") if m in numeric), None)
    if kl and {"ppl_s", "ppl_c"} & set(numeric):
        cols = [c for c in ("id", kl, "ppl_s", "ppl_c") if c in run.table]
        plots.show(plots.kl_vs_perplexity(run.table, kl), "ex_kl_ppl", run.table[cols])
    st.dataframe(run.table["finish_reason"].value_counts(), width="content")


@st.cache_data(max_entries=8, show_spinner=False)
def _position_profile(path: str, stamp: int, metric: str, _records: list[dict]) -> pd.DataFrame:
    return plots.position_profile(_records, metric)  # keyed by run and its size: a growing run is redone


def _profile(run: TextRun, metric: str) -> pd.DataFrame:
    return _position_profile(str(run.path), len(run.records), metric, run.records)


def page() -> None:
    st.title("Run explorer")
    path = pick_run(("decode", "score"), "explorer")
    if path is None:
        st.info("Choose a decode or score run, or type the path of one.")
        return
    run = guard(text_run, path)
    if run is None:
        return
    st.caption(f"{run.kind} run · {len(run.records)} texts · {run.path}")
    if run.n_corrupt:
        st.warning(f"{run.n_corrupt} line(s) of the records file are not valid records and are left out.")
    texts, dists, summary, config = st.tabs(["Texts", "Distributions", "Summary", "Config"])
    with texts:
        texts_tab(run)
    with dists:
        distributions_tab(run)
    with summary:
        render.show_summary(run.summary)
    with config:
        st.code(run.config or "(no .hydra/config.yaml)", language="yaml")


page()
