"""Human-readable views of a run: one token renderer behind the terminal, report.html, W&B and the app.

Token colours scale each token's value by the run's 99th percentile (so one outlier does not wash
out every other token); the exact value is shown on hover. `token_cells` computes the shading once;
HTML comes from the Jinja2 templates in `templates/` (`render_tokens_html`, `render_text_html`,
`html_report`) and the terminal from the same cells (`render_tokens_text`). Every view says which
direction its texts show (`DecodeSummary.direction`) and lists identical samples once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from rich.console import Console
from rich.text import Text

from cdx.io.records import DecodeSummary
from cdx.metrics.summary import AUTO, shown, summarize
from cdx.metrics.text import text_value


@dataclass(frozen=True)
class TokenCell:
    """One rendered token: its text, its value, its background colour, and what hover shows."""

    text: str
    value: float
    rgb: tuple[int, int, int]
    hover: str = ""
    alternatives: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    """Each model's most likely next tokens at this step, best first, as (side label, ((token, log p),
    ...)): shown when the token is clicked (a record decoded with record_top_k > 0)."""


def alternatives_of(entry: Mapping | None) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """One `top_next` entry of a record ({"s": [[token, log p], ...], "c": [...]}) as TokenCell.alternatives."""
    if not entry:
        return ()
    return tuple((label, tuple((str(t), float(lp)) for t, lp in entry.get(side, [])))
                 for side, label in (("s", "starting"), ("c", "comparison")))


LLR = "llr_cs"
"""The signed per-token log-ratio log p_c - log p_s (from a record's logp_s and logp_c):
positive where the comparison model likes the token more, negative where the starting model does."""
SIGNED = {LLR}
SURPRISAL = {"logp_s", "logp_c", "logp_q"}
"""Log-probs (<= 0): shaded by surprisal -log p, so an unlikely token is dark and a sure one white."""
AGREEMENT = {"top1_agree"}
"""1 where both models' top token agree: shaded by disagreement 1 - value, so agreement is white."""
_STARTING_RGB, _COMPARISON_RGB = (33, 102, 172), (178, 24, 43)  # ColorBrewer RdBu ends: blue, red


def token_values(record: Mapping, metric: str) -> list[float]:
    """A record's per-token values of `metric`, the derived log-ratio `llr_cs` included."""
    tokens = record.get("tokens", {})
    if metric == LLR and LLR not in tokens:
        return [c - s for s, c in zip(tokens.get("logp_s", []), tokens.get("logp_c", []))]
    return list(tokens.get(metric, []))


def _shaded(metric: str, value: float) -> float:
    """The quantity a colour stands for: surprisal for log-probs, disagreement for top-1 agreement."""
    return -value if metric in SURPRISAL else 1.0 - value if metric in AGREEMENT else value


def colour_scale(records: Sequence[Mapping], metric: str) -> float:
    """The value that gets the full colour: the 99th percentile of the shaded quantity (of |value|
    for a signed metric), so one outlier does not wash out every other token."""
    if metric in AGREEMENT:
        return 1.0
    vals = [_shaded(metric, v) for r in records for v in token_values(r, metric)]
    if metric in SIGNED:
        vals = [abs(v) for v in vals]
    return float(np.quantile(vals, 0.99)) if vals else 1.0


def _mix(rgb: tuple[int, int, int], s: float) -> tuple[int, int, int]:
    return tuple(int(round(255 + (c - 255) * s)) for c in rgb)  # type: ignore[return-value]


def shade(value: float, scale: float, metric: str | None = None) -> tuple[int, int, int]:
    """Background of a token: white -> red with `value / scale`; for a signed metric, blue (starting
    favours it) <- white -> red (comparison favours it); log-probs and agreement as `_shaded` says."""
    v = _shaded(metric or "", value)
    s = 0.0 if scale <= 0 else min(max(abs(v) / scale if metric in SIGNED else v / scale, 0.0), 1.0)
    if metric in SIGNED:
        return _mix(_COMPARISON_RGB if v > 0 else _STARTING_RGB, s)
    return 255, int(255 * (1 - s)), int(255 * (1 - s))  # white -> red


def token_cells(tokens: Sequence[str], values: Sequence[float], scale: float, metric: str | None = None,
                logps: tuple[Sequence[float], Sequence[float]] | None = None) -> list[TokenCell]:
    """The shading of every token, shared by all views (tokens beyond `values` are dropped).

    Hover shows `metric=value`, and both models' log-probs of the token when `logps` = (logp_s, logp_c).
    """
    name = metric or "value"
    cells = []
    for i, (t, v) in enumerate(zip(tokens, values)):
        hover = f"{name}={float(v):.4f}"
        if logps is not None and i < min(len(logps[0]), len(logps[1])):
            hover += f" · log p_s={logps[0][i]:.3f} · log p_c={logps[1][i]:.3f}"
        cells.append(TokenCell(t, float(v), shade(v, scale, metric), hover))
    return cells


def _record_cells(record: Mapping, metric: str, scale: float) -> list[TokenCell]:
    tokens = record.get("tokens", {})
    logps = (tokens["logp_s"], tokens["logp_c"]) if "logp_s" in tokens and "logp_c" in tokens else None
    cells = token_cells(record.get("token_strs", []), token_values(record, metric), scale, metric, logps)
    top = record.get("top_next") or []
    if len(top) == len(record.get("token_strs", [])):  # one entry per token, or none shown
        cells = [replace(c, alternatives=alternatives_of(e)) for c, e in zip(cells, top)]
    return cells


def colour_bar_html(metric: str, scale: float) -> str:
    """A legend for the shading: the colour ramp with the values at its ends and what they mean."""
    if metric in SIGNED:
        left, right = f"-{scale:.3g}: the starting model likes it more", f"+{scale:.3g}: the comparison model does"
        ramp = f"rgb{_STARTING_RGB},#fff,rgb{_COMPARISON_RGB}"
    else:
        what = {**{m: "surprisal -log p" for m in SURPRISAL}, **{m: "disagreement 1 - top1_agree" for m in AGREEMENT}}
        left, right = "0", f"{scale:.3g} ({what.get(metric, metric)}; 99th percentile and above)"
        ramp = "#fff,rgb(255,0,0)"
    return str(_macro("colour_bar")(metric, ramp, left, right))


def _macro(name: str) -> Callable[..., object]:
    """A macro of templates/tokens.html.j2 as a function (Jinja's module attributes are untyped)."""
    return getattr(_env().get_template("tokens.html.j2").module, name)


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
                      undefined=StrictUndefined, keep_trailing_newline=False)
    env.filters["shown"] = repr  # a token as Python shows it: quotes, and visible spaces and newlines
    return env


def render_tokens_html(tokens: Sequence[str], values: Sequence[float], scale: float, metric: str = "value",
                       logps: tuple[Sequence[float], Sequence[float]] | None = None) -> str:
    """Tokens as inline-styled spans shaded by `values` (see `shade`), `metric=value` (and log-probs) on hover."""
    cells = token_cells(tokens, values, scale, metric, logps)
    return str(_macro("tokens")(cells))


def render_record_tokens_html(record: Mapping, metric: str, scale: float) -> str:
    """A record's continuation tokens only (no prompt), shaded by `metric`, both log-probs on hover."""
    return str(_macro("tokens")(_record_cells(record, metric, scale)))


def render_text_html(record: Mapping, metric: str, scale: float) -> str:
    """A record's prompt (grey), an arrow, then its shaded continuation tokens: one self-contained div."""
    cells = _record_cells(record, metric, scale)
    return str(_macro("text")(str(record.get("prompt", "")), cells))


def render_tokens_text(tokens: Sequence[str], values: Sequence[float], scale: float, color: bool = True,
                       metric: str | None = None) -> Text:
    """The same cells for the terminal: black on the token's colour (plain text if color=False)."""
    line = Text()
    for c in token_cells(tokens, values, scale, metric):
        line.append(c.text.replace("\n", "\\n"), style=f"black on rgb({c.rgb[0]},{c.rgb[1]},{c.rgb[2]})" if color else None)
    return line


def ranked(records: Sequence[Mapping], sort_key: str) -> list[Mapping]:
    """All records best first by a per-text metric (contrast scores rebuilt for old records)."""
    return sorted(records, key=lambda r: text_value(r, sort_key), reverse=True)


_GLOSS = {"contrast_c": "fluent for the comparison model, unlikely for the starting model",
          "contrast_s": "fluent for the starting model, unlikely for the comparison model",
          "llr_cs_mean": "mean log p_c - log p_s per token"}


def key_label(key: str) -> str:
    """A ranking key with a few words on what it means: 'contrast_c (fluent for ...)'."""
    return f"{key} ({_GLOSS[key]})" if key in _GLOSS else key


def direction_line(summary: DecodeSummary) -> str:
    """'These texts show: ...' from the summary's direction, or '' when it has none."""
    d = summary.direction
    if d is None:
        return ""
    how = " (measured from the texts)" if d.source == "measured" else ""
    return f"These texts show: {d.description}{how}"


def print_top(records: Sequence[Mapping], n: int, sort_key: str, metric: str, color: bool = True, console=None,
              summary: DecodeSummary | None = None) -> None:
    """Print the direction, then the `n` best texts by `sort_key` (identical samples once), tokens shaded.

    `summary` (from `cdx.metrics.summarize`) gives the direction and resolves `sort_key: auto`;
    without it both are measured from the records.
    """
    console = console or Console(highlight=False, no_color=not color, soft_wrap=True)
    if summary is None:
        summary = summarize(records, sort_key=sort_key, top_n=n)
    key = summary.sort_key or sort_key if sort_key == AUTO else sort_key
    if direction_line(summary):
        console.print(Text(f"{direction_line(summary)}; ranked by {key_label(key)}", style="bold"))
    scale = colour_scale(records, metric)
    for rank, (r, copies) in enumerate(shown(records, key, n), 1):
        times = f" (sampled {copies} times)" if copies > 1 else ""
        line = Text(f"#{rank} {key}={text_value(r, key):.4f}{times}  ", style="bold")
        line.append(r["prompt"].replace("\n", " "), style="dim")
        line.append(" | ")
        line.append_text(render_tokens_text(r["token_strs"], token_values(r, metric), scale, color, metric))
        console.print(line)


def html_report(records: Sequence[Mapping], summary: DecodeSummary, meta: Mapping, sort_key: str, metric: str) -> str:
    """The whole report as one HTML string (no external assets): direction, summary, ranked texts."""
    key = summary.sort_key or sort_key if sort_key == AUTO else sort_key
    scale = colour_scale(records, metric)
    items = [{"id": r["id"], "prompt": r["prompt"], "copies": copies, "stats": _stats(r, key),
              "cells": _record_cells(r, metric, scale)}
             for r, copies in shown(records, key)]
    return _env().get_template("report.html.j2").render(
        meta=meta, summary=summary, items=items, sort_key=key_label(key), metric=metric)


def _stats(r: Mapping, key: str) -> str:
    m = r["metrics"]
    vals = {k: text_value(r, k) for k in dict.fromkeys((key, "kl_sc_mean", "js_mean", "top1_agree_mean", "ppl_s", "ppl_c"))
            if k in m or k == key}
    return " ".join(f"{k}={v:.4g}" for k, v in vals.items())


def summary_line(summary: DecodeSummary, kind: str, n_records: int, out) -> str:
    """The one line every decode/score run ends with: direction, mean KL with its honest CI, ppl ratio."""
    if not summary.n_tokens:
        return f"cdx {kind}: {n_records} texts, no tokens scored -> {out}"
    kl = summary.token["kl_sc"]
    shows = summary.direction.shows if summary.direction else "?"
    method = "bootstrap over prompts" if summary.ci_method else "normal approximation over tokens"
    return (f"cdx {kind}: {n_records} texts ({_shows_phrase(shows)}), {summary.n_tokens} tokens, "
            f"mean KL(s||c) {kl.mean:.4f} [95% CI {kl.ci95_low:.4f}, {kl.ci95_high:.4f}; {method}], "
            f"top-1 agreement {summary.top1_agreement:.3f}, "
            f"ppl comparison/starting on these texts {summary.ppl_ratio_c_over_s:.3f} -> {out}")


def _shows_phrase(shows: str) -> str:
    return {"comparison": "showing the comparison model", "starting": "showing the starting model",
            "both": "both models, no contrast", "neither": "no positive side"}.get(shows, "direction unknown")
