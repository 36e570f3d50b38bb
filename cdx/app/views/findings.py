"""Findings: the tested hypotheses of an analysis run, and every finding in the knowledge base."""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import streamlit as st

from cdx.app.paired import CSS, highlight_html, pair_rows
from cdx.app.runs import AnalysisRun, Checker, finding_checkers, load_analysis, match_spans, slice_rates
from cdx.app.state import guard, pick_run
from cdx.io.records import FindingRecord, KBEvidence

FIRST = ("finding", "effect", "effect_ci", "q", "rate_s", "rate_c", "k_s/n_s", "k_c/n_c", "validated")
REST = ("kind", "direction", "cluster", "p", "id")
UNTESTED = "too few held-out texts"


def _ci(v) -> str:
    return f"[{v[0]:.3g}, {v[1]:.3g}]" if isinstance(v, (list, tuple)) and len(v) == 2 else ""


def _n(v, spec: str) -> str:
    """A number formatted, or "–" where the record has none (null)."""
    return format(v, spec) if isinstance(v, (int, float)) and not isinstance(v, bool) else "–"


def phrase(f: FindingRecord) -> str:
    """The statement as what it is: a finding when validated, else an untested or unsupported hypothesis."""
    statement = f.statement
    if f.validated:
        return statement
    reason = f.reason or ""
    if reason.startswith(UNTESTED):
        return f"Untested hypothesis: {statement} ({reason})"
    return f"Unsupported hypothesis: {statement} ({reason or 'not validated'})"


def findings_table(findings: list[FindingRecord]) -> pd.DataFrame:
    """One row per finding (in the order given): statement, effect [CI] and q first."""
    rows = []
    for f in findings:
        row = {"finding": phrase(f), "effect": f.effect, "effect_ci": _ci(f.effect_ci), "q": f.q,
               "rate_s": f.rate_s, "rate_c": f.rate_c, "k_s/n_s": f"{f.k_s}/{f.n_s}",
               "k_c/n_c": f"{f.k_c}/{f.n_c}", "validated": bool(f.validated)}
        rows.append(row | {k: getattr(f, k) for k in REST})
    return pd.DataFrame(rows, columns=[*FIRST, *REST])


def finding_detail(f: FindingRecord, run: AnalysisRun, checker: Checker | None) -> None:
    st.markdown(f"rate starting {_n(f.rate_s, '.3f')} {_ci(f.rate_s_ci)} · "
                f"rate comparison {_n(f.rate_c, '.3f')} {_ci(f.rate_c_ci)} · "
                f"effect {_n(f.effect, '+.3f')} {_ci(f.effect_ci)} · "
                f"p {_n(f.p, '.2g')} · q {_n(f.q, '.2g')}")
    if checker is not None and run.pairs:
        behind_counts(f, run, checker)
    else:  # a judge checker (needs an assistant), or a run without its held-out samples: the stored evidence
        st.caption("The evidence texts the analysis kept (the held-out samples are not re-checked here).")
        evidence_texts(f, checker)
    st.json({"checker": f.checker, "discovery": f.discovery, "likelihood": f.likelihood.model_dump()},
            expanded=False)


def behind_counts(f: FindingRecord, run: AnalysisRun, checker: Checker) -> None:
    """The held-out texts that show the finding, on both sides, with the matched words marked."""
    pairs = [p for p in run.pairs if f.cluster is None or p.cluster_id == f.cluster]  # its test's prompts
    n, k_s, k_c = slice_rates(pairs, checker)
    st.markdown(f"**Texts behind the counts** (held-out pairs: starting {k_s}/{n}, comparison {k_c}/{n})")
    shown = [p for p in pairs if checker.check(p.text_s) or checker.check(p.text_c)]
    pair_rows(shown[:6], {f.id: checker}, {f.id: f.statement}, {f.id} if f.validated else set())
    if len(shown) > 6:
        st.caption(f"{len(shown) - 6} more on the Paired samples page.")


def evidence_texts(f: FindingRecord, checker: Checker | None) -> None:
    st.markdown(CSS, unsafe_allow_html=True)
    for ev in f.evidence or []:
        text = ev.text
        spans = match_spans(checker, text) if checker is not None else []
        st.markdown(f"<small>{html.escape(str(ev.model))} · {html.escape(ev.id)} · "
                    f"{html.escape(ev.prompt)}</small><div class='cdx-pair'>{highlight_html(text, spans)}</div>",
                    unsafe_allow_html=True)


def run_section() -> None:
    path = pick_run(("analyze",), "findings")
    if path is None:
        st.info("Choose an analysis run (task=analyze), or type the path of one.")
        return
    run = guard(load_analysis, path)
    if run is None:
        return
    findings = run.findings  # validated first, then by q, then by |effect|
    if run.analysis:
        analysis_head(run.analysis)
    if run.n_corrupt:
        st.warning(f"{run.n_corrupt} damaged line(s) in the run's findings, samples or behaviours are left out.")
    only = st.toggle("Validated only", value=False, key="fd_validated")
    shown = [f for f in findings if f.validated] if only else findings
    st.caption(f"{len(shown)} of {len(findings)} hypotheses · {sum(bool(f.validated) for f in findings)} validated")
    links(run)
    if not shown:
        return
    table = findings_table(shown)
    st.dataframe(table, width="stretch", hide_index=True,
                 column_config={"finding": st.column_config.TextColumn(width="large"),
                                **{k: st.column_config.NumberColumn(format="%.2e") for k in ("p", "q")},
                                **{k: st.column_config.NumberColumn(format="%+.3f") for k in ("effect",)}})
    st.download_button("CSV of these findings", table.to_csv(index=False).encode(), "findings.csv", "text/csv",
                       key="fd_csv", icon=":material/download:")
    checkers = finding_checkers(shown)
    for f in shown:
        icon = ":material/verified:" if f.validated else ":material/help_outline:"
        with st.expander(f"{phrase(f)} · effect {_n(f.effect, '+.2f')} · q {_n(f.q, '.2g')}",
                         icon=icon):
            finding_detail(f, run, checkers.get(f.id))


def links(run: AnalysisRun) -> None:
    """The run's other views, and its HTML report (a download: a browser cannot open a local file from here)."""
    run_q = quote(str(run.path))  # a path may hold spaces or brackets
    st.markdown(f"[What changed](/?run={run_q}) · [Paired samples](paired-samples?run={run_q})")
    report = run.path / "analysis.html"
    if report.is_file():
        st.download_button("analysis.html (the run's report)", report.read_bytes(), "analysis.html", "text/html",
                           key="fd_report", icon=":material/description:")


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
        table = pd.DataFrame([r.model_dump(exclude={"checker"}) for r in rows])
        pairs = sorted(table["pair"].dropna().unique())
        pair = st.selectbox("Pair", ["all", *pairs], key="kb_pair")
        if pair != "all":
            table = table[table["pair"] == pair]
        st.dataframe(table, width="stretch", hide_index=True)
        fid = st.selectbox("Finding", list(table["id"]), key="kb_finding",
                           format_func=lambda i: f"#{i} {table.set_index('id').loc[i, 'statement']}")
        if fid is not None:
            row = kb.finding(int(fid))
            st.markdown("**History**")
            st.dataframe(pd.DataFrame([h.model_dump() for h in row.history]), width="stretch", hide_index=True)
            st.markdown("**Validations**")
            st.dataframe(pd.DataFrame([v.model_dump() for v in row.validations]), width="stretch", hide_index=True)
            st.markdown("**Evidence**")
            for ev in row.evidence:
                evidence_card(ev)
    finally:
        kb.close()


def evidence_card(ev: KBEvidence) -> None:
    """A knowledge-base evidence row as a card: which model, which run, the prompt, then the text."""
    with st.container(border=True):
        meta = " · ".join(str(v) for v in (ev.model, ev.record_id, ev.run_dir) if v)
        if meta:
            st.caption(meta)
        if ev.prompt:
            st.markdown(f"**Prompt:** {ev.prompt}")
        if ev.run_dir:
            st.markdown(f"[Open its run on What changed](/?run={quote(str(ev.run_dir))})")
        text = ev.text
        if text is None:  # an evidence row without a text: its other fields, readable, not one JSON string
            text = "\n".join(f"{k}: {v}" for k, v in ev.model_dump(exclude={"id", "prompt", "text"}).items())
        st.text(str(text)[:2000])


def page() -> None:
    st.title("Findings")
    run_tab, kb_tab = st.tabs(["Analysis run", "Knowledge base (every pair)"])
    with run_tab:
        run_section()
    with kb_tab:
        guard(knowledge_section)


page()
