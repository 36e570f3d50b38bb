"""Human-readable views of a run: a self-contained HTML report and coloured terminal output.

Token colours scale each token's divergence by the run's 99th percentile (so one outlier does
not wash out every other token); the exact value is shown on hover.
"""

from __future__ import annotations

import html
import json

import numpy as np
from rich.console import Console
from rich.text import Text


def colour_scale(records: list[dict], metric: str) -> float:
    vals = [v for r in records for v in r["tokens"].get(metric, [])]
    return float(np.quantile(vals, 0.99)) if vals else 1.0


def shade(value: float, scale: float) -> tuple[int, int, int]:
    s = 0.0 if scale <= 0 else min(max(value / scale, 0.0), 1.0)
    return 255, int(255 * (1 - s)), int(255 * (1 - s))  # white -> red


def ranked(records: list[dict], sort_key: str) -> list[dict]:
    return sorted(records, key=lambda r: r["metrics"].get(sort_key, float("-inf")), reverse=True)


def print_top(records: list[dict], n: int, sort_key: str, metric: str, color: bool = True, console=None) -> None:
    """Print the `n` most divergent texts, tokens shaded by `metric` (plain text if color=False)."""
    console = console or Console(highlight=False, no_color=not color, soft_wrap=True)
    scale = colour_scale(records, metric)
    for rank, r in enumerate(ranked(records, sort_key)[:n], 1):
        line = Text(f"#{rank} {sort_key}={r['metrics'].get(sort_key, float('nan')):.4f}  ", style="bold")
        line.append(r["prompt"].replace("\n", " "), style="dim")
        line.append(" | ")
        for tok, v in zip(r["token_strs"], r["tokens"].get(metric, [])):
            red, g, b = shade(v, scale)
            line.append(tok.replace("\n", "\\n"), style=f"black on rgb({red},{g},{b})" if color else None)
        console.print(line)


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}
table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}
.text{font-family:ui-monospace,monospace;white-space:pre-wrap;line-height:1.7}
.prompt{color:#666}.tok{border-radius:2px}.card{margin:1em 0;padding:.5em 1em;border:1px solid #ccc}
"""


def html_report(records: list[dict], summary: dict, meta: dict, sort_key: str, metric: str) -> str:
    """The whole report as one HTML string (no external assets)."""
    scale = colour_scale(records, metric)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>cdx report</title><style>{_CSS}</style>",
             "</head><body><h1>cdx contrastive decoding report</h1>", _meta_table(meta), _summary_table(summary),
             f"<h2>Texts by {html.escape(sort_key)} (tokens shaded by {html.escape(metric)}; hover for values)</h2>"]
    for rank, r in enumerate(ranked(records, sort_key), 1):
        spans = []
        for tok, v in zip(r["token_strs"], r["tokens"].get(metric, [])):
            red, g, b = shade(v, scale)
            spans.append(f"<span class='tok' style='background:rgb({red},{g},{b})' "
                         f"title='{metric}={v:.4f}'>{html.escape(tok)}</span>")
        m = r["metrics"]
        stats = " ".join(f"{k}={m[k]:.4g}" for k in (sort_key, "js_mean", "top1_agree_mean", "ppl_s", "ppl_c") if k in m)
        parts.append(f"<div class='card'><div>#{rank} <b>{html.escape(r['id'])}</b> {html.escape(stats)}</div>"
                     f"<div class='text'><span class='prompt'>{html.escape(r['prompt'])}</span> ⟶ {''.join(spans)}</div></div>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _meta_table(meta: dict) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
    return f"<table>{rows}</table>"


def _summary_table(summary: dict) -> str:
    if not summary.get("n_tokens"):
        return "<p>No tokens scored.</p>"
    rows = []
    for k, d in summary["token"].items():
        rows.append(f"<tr><td>{k}</td>" + "".join(f"<td>{d[c]:.4f}</td>" for c in
                    ("mean", "ci95_low", "ci95_high", "q90", "q95", "q99", "max")) + "</tr>")
    head = "<tr><th>per token</th><th>mean</th><th>95% CI low</th><th>high</th><th>q90</th><th>q95</th><th>q99</th><th>max</th></tr>"
    extra = {k: summary[k] for k in ("n_texts", "n_tokens", "top1_agreement", "ppl_s", "ppl_c", "ppl_ratio_c_over_s")}
    return f"<h2>Summary</h2><table>{head}{''.join(rows)}</table><pre>{html.escape(json.dumps(extra, indent=1))}</pre>"


def summary_line(summary: dict, kind: str, n_records: int, out) -> str:
    """The one line every decode/score run ends with."""
    if not summary.get("n_tokens"):
        return f"cdx {kind}: {n_records} texts, no tokens scored -> {out}"
    kl = summary["token"]["kl_sc"]
    return (f"cdx {kind}: {n_records} texts, {summary['n_tokens']} tokens, mean KL(s||c) {kl['mean']:.4f} "
            f"[{kl['ci95_low']:.4f}, {kl['ci95_high']:.4f}], top-1 agreement {summary['top1_agreement']:.3f}, "
            f"ppl ratio c/s {summary['ppl_ratio_c_over_s']:.3f} -> {out}")
