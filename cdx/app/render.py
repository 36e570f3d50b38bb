"""Views shared by the pages: token shading, summary tables, per-token and per-text plots.

Token colours come from the report module (`cdx.tracking.report`), so a token has the same
colour in the terminal, the HTML report, W&B and the app: its value scaled by the run's 99th
percentile, the value on hover.
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from cdx.app.runs import summary_rows
from cdx.io.records import DecodeSummary
from cdx.tracking.report import (
    LLR,
    colour_bar_html,
    colour_scale,
    render_record_tokens_html,
    render_text_html,
    render_tokens_html,
)

TOKEN_SHADINGS = (LLR, "kl_sc", "kl_cs", "js", "top1_agree", "logp_s", "logp_c")
"""What tokens can be shaded by, the signed log p_c - log p_s first (it says which model likes a token)."""

# Only for the side-by-side columns; the token spans carry their own inline styles.
TOKEN_CSS = ("<style>.cdx-text{font-family:ui-monospace,monospace;white-space:pre-wrap;line-height:1.7}</style>")


def run_scale(records: list[dict], metric: str) -> float:
    return colour_scale(records, metric)


def token_html(token_strs: list[str], values: list[float], metric: str, scale: float) -> str:
    """Tokens as spans shaded by `values` (white -> red at `scale`), `metric=value` on hover."""
    return render_tokens_html(token_strs, values, scale, metric)


def record_tokens_html(record: dict, metric: str, scale: float) -> str:
    """A record's continuation shaded by `metric` (llr_cs derived), both log-probs on hover."""
    return render_record_tokens_html(record, metric, scale)


def colour_bar(metric: str, scale: float) -> str:
    """The legend of a shading: its colour ramp and what each end means."""
    return colour_bar_html(metric, scale)


def text_html(record: dict, metric: str, scale: float) -> str:
    """Prompt (grey), an arrow, then the continuation's shaded tokens."""
    return render_text_html(record, metric, scale)


def show_summary(summary: DecodeSummary | None) -> None:
    """summary.json as the task wrote it: per-token stats with CIs, per-text means with CIs, headlines."""
    if summary is None:
        st.info("No summary.json yet (the run is still going, or was killed before it finished).")
        return
    if not summary.n_tokens:
        st.warning(f"{summary.n_texts} texts, no tokens scored.")
        return
    token, text, heads = summary_rows(summary)
    if summary.direction is not None:
        st.markdown(f"**These texts show** {summary.direction.description}.")
    cols = st.columns(len(heads))
    for col, (k, v) in zip(cols, heads.items()):
        col.metric(k, f"{v:.4g}" if isinstance(v, float) else str(v))
    ci = summary.ci_method
    st.markdown(f"**Per token** (95% CI: {ci.get('token', 'normal approximation')}; quantiles)")
    st.dataframe(token, width="stretch")
    st.markdown(f"**Per text** (95% CI: {ci.get('text', 'Student-t over per-text means')})")
    if summary.ppl_ratio_note:
        st.caption(summary.ppl_ratio_note)
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


def top_next_table(record: dict, position: int) -> pd.DataFrame | None:
    """Both models' most likely tokens at one position of a record decoded with record_top_k > 0,
    best first, the drawn token marked; None when the record has none."""
    top = record.get("top_next") or []
    if not 0 <= position < len(top):
        return None
    drawn = record.get("token_strs", [])[position] if position < len(record.get("token_strs", [])) else None
    s, c = top[position].get("s", []), top[position].get("c", [])
    rows = []
    for rank in range(max(len(s), len(c))):
        row: dict = {"rank": rank + 1}
        for side, alts in (("starting", s), ("comparison", c)):
            tok, lp = alts[rank] if rank < len(alts) else (None, None)
            row[f"{side} token"] = None if tok is None else repr(tok) + (" (drawn)" if tok == drawn else "")
            row[f"{side} log p"] = lp
        rows.append(row)
    return pd.DataFrame(rows)


def histogram(table: pd.DataFrame, metric: str):
    fig = px.histogram(table, x=metric, nbins=min(60, max(5, len(table) // 5)))
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=30, b=10), title=f"{metric} over texts")
    return fig
