"""Findings: the tested hypotheses of an analysis run, and every finding in the knowledge base."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from cdx.app.runs import load_findings
from cdx.app.state import guard, pick_run

TABLE_FIELDS = ("id", "statement", "kind", "direction", "cluster", "rate_s", "rate_c", "effect", "p", "q", "validated")


def _ci(v) -> str:
    return f"[{v[0]:.3g}, {v[1]:.3g}]" if isinstance(v, (list, tuple)) and len(v) == 2 else ""


def findings_table(findings: list[dict]) -> pd.DataFrame:
    rows = []
    for f in findings:
        row = {k: f.get(k) for k in TABLE_FIELDS}
        row["effect_ci"] = _ci(f.get("effect_ci"))
        row["k_s/n_s"] = f"{f.get('k_s')}/{f.get('n_s')}"
        row["k_c/n_c"] = f"{f.get('k_c')}/{f.get('n_c')}"
        rows.append(row)
    return pd.DataFrame(rows)


def finding_detail(f: dict) -> None:
    st.markdown(f"rate starting {f.get('rate_s', float('nan')):.3f} {_ci(f.get('rate_s_ci'))} · "
                f"rate comparison {f.get('rate_c', float('nan')):.3f} {_ci(f.get('rate_c_ci'))} · "
                f"effect {f.get('effect', float('nan')):.3f} {_ci(f.get('effect_ci'))} · "
                f"p {f.get('p', float('nan')):.2g} · q {f.get('q', float('nan')):.2g}")
    for ev in f.get("evidence", []) or []:
        st.markdown(f"*{ev.get('model')}* · `{ev.get('id')}` · {ev.get('prompt')}")
        st.text(ev.get("text", ""))
    st.json({"checker": f.get("checker"), "discovery": f.get("discovery")}, expanded=False)


def run_section() -> None:
    path = pick_run(("analyze",), "findings")
    if path is None:
        st.info("Choose an analysis run (task=analyze), or type the path of one.")
        return
    loaded = guard(load_findings, path)
    if loaded is None:
        return
    findings, analysis = loaded
    if analysis:
        analysis_head(analysis)
    only = st.toggle("Validated only", value=False, key="fd_validated")
    shown = [f for f in findings if f.get("validated")] if only else findings
    st.caption(f"{len(shown)} of {len(findings)} hypotheses · {sum(bool(f.get('validated')) for f in findings)} validated")
    if not shown:
        return
    st.dataframe(findings_table(shown), width="stretch", hide_index=True,
                 column_config={k: st.column_config.NumberColumn(format="%.2e") for k in ("p", "q")})
    for f in shown:
        icon = ":material/verified:" if f.get("validated") else ":material/help_outline:"
        with st.expander(f"{f.get('statement')} ({f.get('direction')})", icon=icon):
            finding_detail(f)


def analysis_head(analysis: dict) -> None:
    """analysis.json's numbers as metrics, its text fields as captions, the rest on demand."""
    numbers = {k: v for k, v in analysis.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if numbers:
        for col, (k, v) in zip(st.columns(min(len(numbers), 5)), list(numbers.items())[:5]):
            col.metric(k, f"{v:.3g}" if isinstance(v, float) else str(v))
    for k, v in analysis.items():
        if isinstance(v, str):
            st.caption(f"{k}: {v}")
    with st.expander("analysis.json"):
        st.json(analysis)


def knowledge_path() -> Path | None:
    """The knowledge base file, if one exists (the app never creates one)."""
    try:
        from cdx.knowledge import default_path
    except ImportError:
        return None
    path = default_path()
    return path if path.is_file() else None


def knowledge_section() -> None:
    path = knowledge_path()
    if path is None:
        st.info("No knowledge base yet: it is created by the first analysis recorded into it "
                "(see docs/pipeline.md); findings per pair will show here.")
        return
    from cdx.knowledge import KnowledgeBase

    kb = KnowledgeBase(path, readonly=True)  # looking never writes
    try:
        rows = kb.findings()
        st.caption(f"{len(rows)} findings in {path}")
        if not rows:
            return
        table = pd.DataFrame(rows).drop(columns=["checker"], errors="ignore")
        pairs = sorted(table["pair"].dropna().unique())
        pair = st.selectbox("Pair", ["all", *pairs], key="kb_pair")
        if pair != "all":
            table = table[table["pair"] == pair]
        st.dataframe(table, width="stretch", hide_index=True)
        fid = st.selectbox("Finding", list(table["id"]), key="kb_finding",
                           format_func=lambda i: f"#{i} {table.set_index('id').loc[i, 'statement']}")
        if fid is not None:
            f = kb.finding(int(fid))
            st.markdown("**History**")
            st.dataframe(pd.DataFrame(f.get("history", [])), width="stretch", hide_index=True)
            st.markdown("**Validations**")
            st.dataframe(pd.DataFrame(f.get("validations", [])), width="stretch", hide_index=True)
            st.markdown("**Evidence**")
            for ev in f.get("evidence", []):
                st.text(json.dumps({k: v for k, v in ev.items() if k != "id"}, ensure_ascii=False)[:2000])
    finally:
        kb.close()


def page() -> None:
    st.title("Findings")
    run_tab, kb_tab = st.tabs(["Analysis run", "Knowledge base (every pair)"])
    with run_tab:
        run_section()
    with kb_tab:
        guard(knowledge_section)


page()
