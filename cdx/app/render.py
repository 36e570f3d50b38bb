"""Views shared by the pages: token shading, summary tables, per-token and per-text plots.

Token colours come from the report module (`cdx.tracking.report`), so a token has the same
colour in the terminal, the HTML report, W&B and the app: its value scaled by the run's 99th
percentile, the value on hover.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.express as px
import streamlit as st

from cdx.app.runs import summary_rows
from cdx.tracking.report import colour_scale, shade

TOKEN_CSS = ("<style>.cdx-text{font-family:ui-monospace,monospace;white-space:pre-wrap;line-height:1.8}"
             ".cdx-prompt{color:#777}.cdx-tok{border-radius:2px}</style>")


def run_scale(records: list[dict], metric: str) -> float:
    return colour_scale(records, metric)


def token_html(token_strs: list[str], values: list[float], metric: str, scale: float) -> str:
    """Tokens as spans shaded by `values` (white -> red at `scale`), `metric=value` on hover."""
    spans = []
    for tok, v in zip(token_strs, values):
        r, g, b = shade(v, scale)
        spans.append(f"<span class='cdx-tok' style='background:rgb({r},{g},{b})' "
                     f"title='{html.escape(metric)}={v:.4f}'>{html.escape(tok)}</span>")
    return "".join(spans)


def text_html(record: dict, metric: str, scale: float) -> str:
    """Prompt (grey) then the continuation's shaded tokens."""
    toks = token_html(record.get("token_strs", []), record.get("tokens", {}).get(metric, []), metric, scale)
    return (f"<div class='cdx-text'><span class='cdx-prompt'>{html.escape(record.get('prompt', ''))}</span>"
            f" ⟶ {toks}</div>")


def show_text(record: dict, metric: str, scale: float) -> None:
    st.markdown(TOKEN_CSS + text_html(record, metric, scale), unsafe_allow_html=True)


def show_summary(summary: dict) -> None:
    """summary.json as the task wrote it: per-token stats with CIs, per-text means with CIs, headlines."""
    if not summary:
        st.info("No summary.json yet (the run is still going, or was killed before it finished).")
        return
    if not summary.get("n_tokens"):
        st.warning(f"{summary.get('n_texts', 0)} texts, no tokens scored.")
        return
    token, text, heads = summary_rows(summary)
    cols = st.columns(len(heads))
    for col, (k, v) in zip(cols, heads.items()):
        col.metric(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    st.markdown("**Per token** (95% CI, quantiles)")
    st.dataframe(token, width="stretch")
    st.markdown("**Per text** (mean over texts, Student-t 95% CI)")
    st.dataframe(text, width="stretch")


def token_plot(record: dict, metrics: list[str]):
    """A line per metric along the continuation (x = token position, hover = the token)."""
    toks = record.get("token_strs", [])
    data = pd.DataFrame({m: record.get("tokens", {}).get(m, []) for m in metrics})
    data["position"] = range(len(data))
    data["token"] = toks[: len(data)]
    long = data.melt(id_vars=["position", "token"], var_name="metric", value_name="value")
    fig = px.line(long, x="position", y="value", color="metric", hover_data=["token"], markers=True)
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=30, b=10), title=f"divergence along {record.get('id')}")
    return fig


def histogram(table: pd.DataFrame, metric: str):
    fig = px.histogram(table, x=metric, nbins=min(60, max(5, len(table) // 5)))
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=30, b=10), title=f"{metric} over texts")
    return fig
