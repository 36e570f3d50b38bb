"""Drawing paired held-out samples (prompt | starting | comparison), shared by What changed, Paired samples and Findings.

The words a finding's checker matched are highlighted, and each text is tagged with the findings
it satisfies (checked here with the finding's own checker, as the validation counted it).
"""

from __future__ import annotations

import html

import streamlit as st

from cdx.app.runs import Checker, PairedSample, match_spans

CSS = """<style>
.cdx-pair{font-family:ui-monospace,monospace;font-size:0.85em;white-space:pre-wrap;line-height:1.45;
 border:1px solid #ddd;border-radius:6px;padding:6px 8px;min-height:3em}
.cdx-pair mark{background:#fde68a;padding:0 1px;border-radius:2px}
.cdx-tag{display:inline-block;font-size:0.75em;border-radius:8px;padding:0 6px;margin:0 3px 3px 0;
 background:#e0ecf8;color:#1d3f6e}
.cdx-tag.ok{background:#d9f2dd;color:#1b5e20}
</style>"""


def highlight_html(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` escaped for HTML, with each (start, end) span wrapped in <mark> (overlaps merged)."""
    out, at = [], 0
    for start, end in _merge(spans):
        out += [html.escape(text[at:start]), "<mark>", html.escape(text[start:end]), "</mark>"]
        at = end
    out.append(html.escape(text[at:]))
    return "".join(out)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def text_card(text: str, checkers: dict[str, Checker], labels: dict[str, str], validated: set[str]) -> str:
    """A text as HTML: tags of the findings it satisfies, then the text with their matched words marked."""
    hits = [fid for fid, c in checkers.items() if c.check(text)]
    tags = "".join(f"<span class='cdx-tag{' ok' if fid in validated else ''}' title='{html.escape(labels[fid])}'>"
                   f"{'✔ ' if fid in validated else ''}{html.escape(_tag(labels[fid]))}</span>" for fid in hits)
    spans = [s for fid in hits for s in match_spans(checkers[fid], text)]
    return f"{tags}<div class='cdx-pair'>{highlight_html(text, spans) or '<i>(empty)</i>'}</div>"


def _tag(statement: str, n: int = 48) -> str:
    short = statement.removeprefix("the comparison model ")
    return short if len(short) <= n else short[: n - 1] + "…"


def pair_rows(pairs: list[PairedSample], checkers: dict[str, Checker], labels: dict[str, str],
              validated: set[str]) -> None:
    """Each pair as a row: the prompt (and its cluster), then starting | comparison."""
    st.markdown(CSS, unsafe_allow_html=True)
    for p in pairs:
        cluster = f" · cluster *{p.cluster}*" if p.cluster else ""
        st.markdown(f"**Prompt {p.prompt_index}**{cluster}: {p.prompt}")
        left, right = st.columns(2)
        left.markdown(f"<small>starting · {html.escape(p.id_s)}</small>" +
                      text_card(p.text_s, checkers, labels, validated), unsafe_allow_html=True)
        right.markdown(f"<small>comparison · {html.escape(p.id_c)}</small>" +
                       text_card(p.text_c, checkers, labels, validated), unsafe_allow_html=True)
