"""The app's plotly figures, built from what the runs wrote (no model is run), and `show` to export them.

Each figure function is pure (data in, `go.Figure` out), so tests check its numbers against an
independent computation; `show` draws one in the page with a PNG button (plotly's own modebar) and
a CSV of the numbers behind it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from cdx.app.runs import WordShift
from cdx.io.records import FindingRecord

FAVOURED, AVOIDED, NEUTRAL = "#2166ac", "#b2182b", "#888888"  # ColorBrewer RdBu ends: colour-blind safe
LAYOUT = dict(margin=dict(l=10, r=40, t=50, b=10), template="plotly_white", modebar_orientation="v",
              title_font_size=14,  # a vertical modebar on the right never covers the title, nor the legend below
              legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0))


def words_chart(shifts: Sequence[WordShift], comparison: str = "comparison") -> go.Figure:
    """Diverging bars: words the comparison model favours (right, blue) and avoids (left, red)."""
    rows = sorted(shifts, key=lambda s: s.delta)
    fig = go.Figure(go.Bar(
        x=[s.delta for s in rows], y=[s.word for s in rows], orientation="h",
        marker_color=[FAVOURED if s.delta > 0 else AVOIDED for s in rows],
        text=[f"{s.count}×" for s in rows], textposition="outside",
        hovertemplate="%{y}: %{x:+.2f} nats (%{text})<extra></extra>"))
    fig.update_layout(title=f"words {comparison} favours (right) and avoids (left)",
                      xaxis_title="mean log p_c − log p_s per occurrence (nats)",
                      height=max(260, 22 * len(rows) + 90), **LAYOUT)
    fig.add_vline(x=0, line_color="#444")
    return fig


def forest_plot(findings: Sequence[FindingRecord], mde: float | None = None) -> go.Figure:
    """Effect (rate_c − rate_s) with its 95% CI per finding; ±MDE dashed (the smallest detectable effect)."""
    # plotly draws the first row at the bottom: the best finding goes on top; a finding without an
    # effect or CI (an older or untestable record) has no point to draw
    drawn = [(f, f.effect, f.effect_ci) for f in findings if f.effect is not None and f.effect_ci is not None][::-1]
    rows = [f for f, _, _ in drawn]
    effect = np.array([e for _, e, _ in drawn], dtype=float)
    lo = np.array([ci[0] for _, _, ci in drawn], dtype=float)
    hi = np.array([ci[1] for _, _, ci in drawn], dtype=float)
    fig = go.Figure(go.Scatter(
        x=effect.tolist(), y=[_short(f.statement) for f in rows], mode="markers",  # lists: readable JSON
        text=[f.statement for f in rows],
        error_x=dict(type="data", symmetric=False, array=(hi - effect).tolist(), arrayminus=(effect - lo).tolist()),
        marker=dict(size=10, symbol=["diamond" if f.validated else "circle-open" for f in rows],
                    color=[FAVOURED if f.validated else NEUTRAL for f in rows]),
        customdata=[[a, b, f.q] for a, b, f in zip(lo.tolist(), hi.tolist(), rows)],
        hovertemplate="%{text}<br>effect %{x:+.2f} [%{customdata[0]:.2f}, %{customdata[1]:.2f}], q %{customdata[2]:.2g}"
                      "<extra></extra>"))
    fig.add_vline(x=0, line_color="#444")
    if mde is not None:
        for x in (-mde, mde):
            fig.add_vline(x=x, line_dash="dash", line_color="#999")
        fig.add_annotation(x=mde, y=1.02, yref="paper", text=f"MDE {mde:.2f}", showarrow=False)
    fig.update_layout(title="findings: effect (rate_c − rate_s) with 95% CI; ◆ validated",
                      xaxis_title="rate difference on held-out prompts", height=max(220, 34 * len(rows) + 110),
                      **LAYOUT)
    return fig


def _short(text: str, n: int = 60) -> str:
    text = text.removeprefix("the comparison model ")  # every statement starts so; the axis has no room for it
    return text if len(text) <= n else text[: n - 1] + "…"


def position_profile(records: Sequence[dict], metric: str = "kl_sc") -> pd.DataFrame:
    """Per token position: mean of `metric` over the texts that reach it, a normal 95% CI and the count."""
    series = [r.get("tokens", {}).get(metric) or [] for r in records]
    width = max((len(s) for s in series), default=0)
    grid = np.full((len(series), width), np.nan)  # (texts, positions): shorter texts padded with NaN
    for i, s in enumerate(series):
        grid[i, : len(s)] = s
    n = np.sum(~np.isnan(grid), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a position one text reaches has no sd: NaN, no band
        mean = np.nanmean(grid, axis=0) if width else np.array([])
        sd = np.nanstd(grid, axis=0, ddof=1) if width else np.array([])
        half = 1.96 * sd / np.sqrt(n)
    return pd.DataFrame({"position": np.arange(width), "mean": mean, "low": mean - half, "high": mean + half, "n": n})


def position_plot(profile: pd.DataFrame, metric: str) -> go.Figure:
    """Mean divergence by token position over all texts, with its 95% band."""
    fig = go.Figure()
    x = profile["position"].tolist()  # lists, not numpy: the chart's JSON stays readable (and testable)
    _band(fig, x, profile["low"].tolist(), profile["high"].tolist(), FAVOURED)
    fig.add_trace(go.Scatter(x=x, y=profile["mean"].tolist(), mode="lines", name=f"mean {metric}",
                             line_color=FAVOURED, customdata=profile["n"].tolist(),
                             hovertemplate="position %{x}: %{y:.3f} over %{customdata} texts<extra></extra>"))
    fig.update_layout(title=f"{metric} by position over all texts (mean, 95% band)", xaxis_title="token position",
                      yaxis_title=metric, height=340, showlegend=False, **LAYOUT)
    return fig


def _band(fig: go.Figure, x, low, high, colour: str, name: str = "95% CI") -> None:
    """A shaded band between `low` and `high` (drawn as upper then lower line, filled between)."""
    x, low, high = (np.asarray(v, dtype=float).tolist() for v in (x, low, high))  # lists: readable JSON
    fig.add_trace(go.Scatter(x=x, y=high, mode="lines", line_width=0, showlegend=False, hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=x, y=low, mode="lines", line_width=0, fill="tonexty", name=name, showlegend=False,
                             fillcolor=_rgba(colour, 0.2), hoverinfo="skip"))


def _rgba(hex_colour: str, alpha: float) -> str:
    r, g, b = (int(hex_colour[i: i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def kl_vs_perplexity(table: pd.DataFrame, kl: str = "kl_sc_mean") -> go.Figure:
    """One point per text: its mean KL against its perplexity under each model (log x axis)."""
    fig = go.Figure()
    for col, colour, name in (("ppl_s", AVOIDED, "starting"), ("ppl_c", FAVOURED, "comparison")):
        if col in table:
            fig.add_trace(go.Scattergl(x=table[col], y=table[kl], mode="markers", name=f"perplexity under {name}",
                                       marker=dict(color=colour, size=5, opacity=0.6), text=table.get("id"),
                                       hovertemplate="%{text}: ppl %{x:.3g}, " + kl + " %{y:.3g}<extra></extra>"))
    fig.update_layout(title=f"per-text {kl} against perplexity", xaxis_type="log", xaxis_title="perplexity",
                      yaxis_title=kl, height=360, **LAYOUT)
    return fig


def histogram(table: pd.DataFrame, metric: str) -> go.Figure:
    """The distribution of one per-text metric, its mean marked."""
    fig = go.Figure(go.Histogram(x=table[metric], nbinsx=40, marker_color=FAVOURED))
    fig.add_vline(x=float(table[metric].mean()), line_dash="dash", annotation_text="mean")
    fig.update_layout(title=f"per-text {metric}", xaxis_title=metric, yaxis_title="texts", height=320, **LAYOUT)
    return fig


def sweep_curves(table: pd.DataFrame, x: str, ys: Sequence[str]) -> go.Figure:
    """Metrics against the swept value; a 95% band where the table has `<stem>_ci95_low/_high` columns."""
    t = table.sort_values(x)
    fig = go.Figure()
    for n, y in enumerate(ys):
        colour = PALETTE[n % len(PALETTE)]
        stem = y.removesuffix("_mean")
        if f"{stem}_ci95_low" in t and f"{stem}_ci95_high" in t:
            _band(fig, t[x], t[f"{stem}_ci95_low"], t[f"{stem}_ci95_high"], colour)
        fig.add_trace(go.Scatter(x=t[x].tolist(), y=t[y].tolist(), mode="lines+markers", name=y, line_color=colour))
    fig.update_layout(title=f"sweep over {x}", xaxis_title=x, height=360, **LAYOUT)
    return fig


def cycle_curves(cycles: pd.DataFrame, ys: Sequence[str]) -> go.Figure:
    """Values per search cycle; failed cycles drawn as crosses."""
    fig = go.Figure()
    ok = cycles.get("ok", pd.Series(True, index=cycles.index)).astype(bool)
    for n, y in enumerate(ys):
        colour = PALETTE[n % len(PALETTE)]
        fig.add_trace(go.Scatter(x=cycles["cycle"], y=cycles[y], mode="lines+markers", name=y, line_color=colour,
                                 marker_symbol=np.where(ok, "circle", "x")))
    fig.update_layout(title="divergence per search cycle (× failed cycle)", xaxis_title="cycle", height=320, **LAYOUT)
    return fig


PALETTE = ("#2166ac", "#b2182b", "#1b7837", "#762a83", "#e08214", "#35978f")


def show(fig: go.Figure, key: str, data: pd.DataFrame | None = None) -> None:
    """Draw `fig` with a PNG export (the camera button) and, when given, its numbers as CSV."""
    config = {"toImageButtonOptions": {"format": "png", "filename": f"cdx-{key}", "scale": 2},
              "displaylogo": False}
    st.plotly_chart(fig, key=key, config=config)
    if data is not None and not data.empty:
        st.download_button("CSV of this plot", data.to_csv(index=False).encode(), f"cdx-{key}.csv", "text/csv",
                           key=f"{key}_csv", icon=":material/download:")
