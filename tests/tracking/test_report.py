"""One token renderer: HTML snippets, report.html, the terminal; direction, dedup, the summary line."""

from __future__ import annotations

import math
from html.parser import HTMLParser

from rich.console import Console

from cdx.io.records import DecodeSummary, Direction
from cdx.metrics import summarize, text_metrics
from cdx.tracking.report import (
    colour_scale,
    html_report,
    print_top,
    render_text_html,
    render_tokens_html,
    render_tokens_text,
    shade,
    summary_line,
    token_cells,
)

DIRECTION = Direction(shows="comparison",
                      description="text the comparison model would write and the starting model would not")


class _Spans(HTMLParser):
    """Collects (style, title, text) of every <span class='cdx-tok'>."""

    def __init__(self):
        super().__init__()
        self.spans, self._open = [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "span" and a.get("class") == "cdx-tok":
            self._open = [a["style"], a["title"], ""]

    def handle_data(self, data):
        if self._open is not None:
            self._open[2] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.spans.append(tuple(self._open))
            self._open = None


def _spans(html: str):
    p = _Spans()
    p.feed(html)
    return p.spans


def _record(i, toks, kl, logp_s, logp_c, prompt="Tell me a story.", prompt_index=0, cont=None):
    tokens = {"kl_sc": kl, "kl_cs": kl, "js": [v / 4 for v in kl], "top1_agree": [1.0] * len(kl),
              "weighted_kl": kl, "logp_s": logp_s, "logp_c": logp_c}
    return {"id": f"p{prompt_index:05d}-s{i:02d}", "prompt": prompt, "prompt_index": prompt_index,
            "continuation": cont if cont is not None else "".join(toks), "token_strs": toks, "tokens": tokens,
            "metrics": text_metrics(tokens)}


def _run():
    pirate = _record(0, ["Arr", ",", " matey"], [0.5, 0.2, 0.9], [-6.0, -3.0, -7.0], [-1.0, -0.5, -1.0])
    soup = _record(1, ["\ufffd", "<b>", "x"], [4.0, 5.0, 6.0], [-9.0, -9.0, -9.0], [-9.5, -9.0, -9.5])
    twin = [_record(2 + k, ["Arr", "!"], [0.3, 0.3], [-5.0, -5.0], [-1.0, -1.0], prompt_index=1,
                    prompt="Hi?") for k in range(3)]
    return [pirate, soup, *twin]


def test_token_html_escapes_and_carries_value_and_colour():
    html = render_tokens_html(["<script>", " a&b", "\n"], [0.0, 0.5, 2.0], 1.0, "kl_sc")
    assert "<script>" not in html and "&lt;script&gt;" in html
    spans = _spans(html)
    assert [s[2] for s in spans] == ["<script>", " a&b", "\n"]
    assert [s[1] for s in spans] == ["kl_sc=0.0000", "kl_sc=0.5000", "kl_sc=2.0000"]
    for (style, _, _), v in zip(spans, [0.0, 0.5, 2.0]):
        assert "background:rgb({},{},{})".format(*shade(v, 1.0)) in style
    assert shade(2.0, 1.0) == (255, 0, 0) and shade(0.0, 1.0) == (255, 255, 255)


def test_text_html_and_terminal_share_the_cells():
    rec = _run()[0]
    scale = colour_scale([rec], "kl_sc")
    cells = token_cells(rec["token_strs"], rec["tokens"]["kl_sc"], scale)
    html_styles = [s[0] for s in _spans(render_text_html(rec, "kl_sc", scale))]
    term = render_tokens_text(rec["token_strs"], rec["tokens"]["kl_sc"], scale)
    term_styles = [str(span.style) for span in term.spans]
    for c, hs, ts in zip(cells, html_styles, term_styles, strict=True):
        assert f"rgb({c.rgb[0]},{c.rgb[1]},{c.rgb[2]})" in hs.replace(" ", "")
        assert f"rgb({c.rgb[0]},{c.rgb[1]},{c.rgb[2]})" in ts.replace(" ", "")
    assert "Tell me a story." in render_text_html(rec, "kl_sc", scale)
    assert render_tokens_text(["a\nb"], [1.0], 1.0, color=False).plain == "a\\nb"


def test_report_html_says_the_direction_ranks_and_lists_identical_samples_once():
    recs = _run()
    summary = summarize(recs, sort_key="auto", direction=DIRECTION)
    html = html_report(recs, summary, {"starting": "s", "comparison": "c"}, "auto", "kl_sc")
    assert "These texts show:</b> text the comparison model would write" in html
    assert "Texts by contrast_c" in html
    assert html.count("sampled 3 times") == 1 and html.count("Hi?") == 1
    order = [html.index(s) for s in ("p00000-s00", "p00001-s02", "p00000-s01")]
    assert order == sorted(order)  # the fluent pirate text, the twins, and the soup (high KL) last
    assert "cluster bootstrap over prompts" in html
    assert "perplexity of these texts under the comparison model / under the starting model" in html


def test_report_html_without_tokens_or_direction_renders():
    empty = html_report([], DecodeSummary(n_texts=0, n_tokens=0), {"x": "<y>"}, "kl_sc_mean", "kl_sc")
    assert "No tokens scored." in empty and "&lt;y&gt;" in empty and "These texts show" not in empty


def test_print_top_leads_with_the_direction_and_dedups():
    recs = _run()
    console = Console(record=True, width=200, color_system=None)
    print_top(recs, 5, "auto", "kl_sc", color=False, console=console,
              summary=summarize(recs, sort_key="auto", direction=DIRECTION))
    lines = console.export_text().splitlines()
    assert lines[0].startswith("These texts show: text the comparison model would write")
    assert lines[0].endswith("ranked by contrast_c (fluent for the comparison model, unlikely for the starting model)")
    assert lines[1].startswith("#1 contrast_c=") and "Arr, matey" in lines[1]
    assert "(sampled 3 times)" in lines[2] and len(lines) == 4
    console = Console(record=True, width=200, color_system=None)
    print_top(recs, 1, "auto", "kl_sc", color=False, console=console)  # no summary: direction measured
    assert "(measured from the texts)" in console.export_text()


def test_summary_line_names_the_direction_the_interval_and_the_ratio():
    recs = _run()
    s = summarize(recs, direction=DIRECTION)
    line = summary_line(s, "generations", len(recs), "/out")
    kl = s.token["kl_sc"]
    assert "showing the comparison model" in line
    assert f"[95% CI {kl.ci95_low:.4f}, {kl.ci95_high:.4f}; bootstrap over prompts]" in line
    assert f"ppl comparison/starting on these texts {s.ppl_ratio_c_over_s:.3f}" in line
    assert math.isfinite(kl.ci95_low) and line.endswith("-> /out")
    empty = DecodeSummary(n_texts=2, n_tokens=0)
    assert summary_line(empty, "scores", 2, "/o") == "cdx scores: 2 texts, no tokens scored -> /o"


def test_clicked_tokens_show_both_models_alternatives_escaped_and_in_order():
    rec = _record(0, ["Arr", "<b>"], [0.5, 0.2], [-6.0, -3.0], [-1.0, -0.5])
    rec["top_next"] = [{"s": [["Hello", -0.1], ["Arr", -6.0]], "c": [["Arr", -1.0], ["Ahoy", -1.5]]},
                       {"s": [["<b>", -3.0], ["x", -4.0]], "c": [["<b>", -0.5], ["y", -2.0]]}]
    html = render_text_html(rec, "llr_cs", 1.0)
    assert html.count("tabindex='0'") == 2 and html.count("class='cdx-alt'") == 2
    assert ".cdx-tok:focus .cdx-alt{display:block" in html  # shown on click (focus), hidden otherwise
    first = html[html.index("class='cdx-alt'"): html.index("</span>", html.index("class='cdx-alt'"))]
    assert first.index("starting model") < first.index("&#39;Hello&#39; -0.10") < first.index("&#39;Arr&#39; -6.00") \
        < first.index("comparison model") < first.index("&#39;Arr&#39; -1.00") < first.index("&#39;Ahoy&#39; -1.50")
    assert "&#39;&lt;b&gt;&#39; -3.00" in html and "<b>'<b>" not in html  # a token is never markup
    rec["top_next"] = rec["top_next"][:1]  # not one entry per token: none shown rather than misaligned
    assert "tabindex" not in render_text_html(rec, "llr_cs", 1.0)
    rec.pop("top_next")
    assert "cdx-alt" not in render_text_html(rec, "llr_cs", 1.0)
