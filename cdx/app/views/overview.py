"""What changed: the first page. For a run, what the comparison model does differently, in one screen.

An analysis run: its behaviours as the CLI states them (each with its other sides), the words each
model favours (from both models' log-probs on the held-out samples), the findings as a forest plot
(effect with CI, the minimum detectable effect marked) and three paired examples. A decode or score
run: the CLI's `what_changed` lines, the words chart and its top texts. Nothing is generated:
everything comes from the run folder.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pandas as pd
import streamlit as st

from cdx.analysis.behaviours import OTHER_SIDE, WORD_SHIFT, Behaviour
from cdx.app import plots, render
from cdx.app.paired import pair_rows
from cdx.app.runs import (
    AnalysisRun,
    PairedSample,
    TextRun,
    finding_checkers,
    load_analysis,
    run_kind,
    word_shifts,
)
from cdx.app.state import guard, known_runs, pick_run, text_run
from cdx.io.records import FindingRecord

KINDS = ("analyze", "decode", "score")


def newest_run() -> Path | None:
    """The newest analysis under the app's roots, else the newest decode or score run, else None.

    Shown when no run is chosen, but not written into the shared choice: the other pages open empty,
    not on a run of a kind they do not show.
    """
    found = known_runs(("analyze",)) or known_runs(("decode", "score"))
    return found[0].path if found else None


def headline(run: AnalysisRun) -> str:
    a = run.analysis
    pair = a.get("pair") or {}
    who = f"**{pair.get('comparison', 'comparison')}** vs **{pair.get('starting', 'starting')}**" if pair else ""
    n_val, n_hyp = a.get("n_validated", sum(bool(f.validated) for f in run.findings)), len(run.findings)
    if n_val:
        n_b = sum(b.is_behaviour for b in run.behaviours)
        lead = f"{n_b} behaviour(s) from " if run.behaviours else ""
        return f"{who}: {lead}{n_val} validated finding(s) of {n_hyp} hypotheses tested on held-out prompts."
    mde = a.get("mde_80")
    mde_txt = f"; the smallest rate difference it could detect with 80% power is {mde:.2f}" if mde else ""
    return f"{who}: no validated difference among {n_hyp} hypotheses{mde_txt}."


def behaviour_lines(behaviours: list[Behaviour]) -> list[str]:
    """The validated behaviours and word-frequency shifts as the CLI states them (markdown list
    items), each behaviour's other sides nested under it; [] when there are none."""
    lines = []
    for b in behaviours:
        if not b.validated or b.kind == OTHER_SIDE:
            continue
        mark = "✔" if b.is_behaviour else "~"
        lines.append(f"- {mark} {b.line(_md)}")
        lines += [f"    - its other side (nothing on these texts tells them apart): {_md(o.statement)}: "
                  f"{o.rates_text()}, q={o.q:.2g}" for o in behaviours if o.other_side_of == b.id and o.validated]
    return lines


def _md(text: str) -> str:
    """Text shown as written, not as markdown (a phrase may hold * _ ` [ ])."""
    return "".join("\\" + ch if ch in "*_`[]<>#|" else ch for ch in text)


def telling_pairs(run: AnalysisRun, n: int = 3) -> list[PairedSample]:
    """Pairs where a validated finding shows in one text and not the other first, then the rest in order."""
    validated = [f.id for f in run.findings if f.validated]
    checkers = finding_checkers([f for f in run.findings if f.id in validated])
    def differs(p: PairedSample) -> bool:
        return any(c.check(p.text_s) != c.check(p.text_c) for c in checkers.values())
    return sorted(run.pairs, key=lambda p: not differs(p))[:n]


def analysis_view(path: Path) -> None:
    run = guard(load_analysis, path)
    if run is None:
        return
    st.markdown(headline(run))
    lines = behaviour_lines(run.behaviours)
    if lines:  # what a researcher would state first; the findings below are their details
        st.markdown("\n".join(lines))
        if any(b.validated and b.kind == WORD_SHIFT for b in run.behaviours):
            st.caption("~ word-frequency shift: validated word rates with no distinctive phrase, not a behaviour")
    if run.n_corrupt:
        st.warning(f"{run.n_corrupt} damaged line(s) in the run's findings, samples or behaviours are left out.")
    words, forest = st.columns([2, 3])  # the forest plot's labels are sentences
    with words:
        shifts = word_shifts(run.samples)
        if shifts:
            plots.show(plots.words_chart(shifts), "ov_words", _frame(shifts))
        else:
            st.info("No word occurs often enough in the held-out samples to say which model favours it.")
    with forest:
        forest_section(run)
    st.subheader("Paired examples (same held-out prompt)")
    if not run.pairs:
        st.info("This run has no held-out samples (validation.jsonl) to pair.")
        return
    tested = finding_checkers(run.findings)
    labels = {f.id: f.statement for f in run.findings}
    pair_rows(telling_pairs(run), tested, labels, {f.id for f in run.findings if f.validated})
    st.markdown(f"[Every pair, by cluster and finding]({link('paired-samples', run.path)}) · "
                f"[Findings table]({link('findings', run.path)})")
    report_button(run.path / "analysis.html")


def forest_section(run: AnalysisRun) -> None:
    mde = run.analysis.get("mde_80")
    drawable = [f for f in run.findings if f.effect is not None and f.effect_ci is not None]
    validated = [f for f in drawable if f.validated]
    if validated:
        plots.show(plots.forest_plot(validated, mde), "ov_forest", _findings_frame(validated))
        return
    tested = drawable[:8]
    st.info("No validated finding in this run" + (f" (minimum detectable effect {mde:.2f})" if mde else "") +
            (": the hypotheses it tested, none supported, are below." if tested else "."))
    if tested:
        plots.show(plots.forest_plot(tested, mde), "ov_forest", _findings_frame(tested))


def text_view(path: Path) -> None:
    run: TextRun | None = guard(text_run, path)
    if run is None:
        return
    lines = (run.summary.what_changed if run.summary else None) or []
    for line in lines:
        st.markdown(f"- {line}")
    if not lines:
        st.caption("This run's summary has no what-changed lines (a score run, or one made before them).")
    shifts = word_shifts(run.records)
    if shifts:
        plots.show(plots.words_chart(shifts), "ov_words", _frame(shifts))
    key = (run.summary.sort_key if run.summary else None) or "kl_sc_mean"
    if key in run.table and run.records:
        st.subheader(f"Top texts by {key}")
        st.markdown(render.TOKEN_CSS, unsafe_allow_html=True)
        scale = render.run_scale(run.records, "kl_sc") if "kl_sc" in run.records[0].get("tokens", {}) else 1.0
        for idx in run.table[key].nlargest(3).index:
            rec = run.records[idx]
            st.markdown(f"**{rec.get('id')}** · {key}={run.table.loc[idx, key]:.3g}")
            st.markdown(render.text_html(rec, "kl_sc", scale) if "kl_sc" in rec.get("tokens", {}) else
                        f"{rec.get('prompt', '')} → {rec.get('continuation', '')}", unsafe_allow_html=True)
    st.markdown(f"[Open in the Run explorer]({link('explorer', run.path)})")
    report_button(run.path / "report.html")


def report_button(report: Path) -> None:
    """The run's HTML report as a download (a browser page cannot open a local file by link)."""
    if report.is_file():
        st.download_button(f"{report.name} (the run's report)", report.read_bytes(), report.name, "text/html",
                           key="ov_report", icon=":material/description:")


def link(page: str, run: Path) -> str:
    """A page's URL with the run preselected (quoted: a path may hold spaces or brackets)."""
    return f"{page}?run={quote(str(run))}"


def _frame(shifts) -> pd.DataFrame:
    return pd.DataFrame([s.model_dump() for s in shifts])


def _findings_frame(findings: list[FindingRecord]) -> pd.DataFrame:
    return pd.DataFrame([f.model_dump(include={"id", "statement", "effect", "q", "validated"}) |
                         {"effect_ci_low": ci[0], "effect_ci_high": ci[1]}
                         for f in findings for ci in [f.effect_ci or (float("nan"), float("nan"))]])


def page() -> None:
    st.title("What changed")
    path = pick_run(KINDS, "overview")
    if path is None and (path := newest_run()) is not None:
        st.caption(f"Showing the newest run, {path}; choose another above.")
    if path is None:
        st.info("No run yet. Start one on **Compare** (a decode shows the words each model favours; "
                "task=analyze adds tested findings), or type the path of a run.")
        return
    kind = guard(run_kind, path)
    if kind == "analyze":
        analysis_view(path)
    elif kind in ("decode", "score"):
        text_view(path)
    elif kind is not None:
        st.error(f"{path} is a {kind} run; this page shows analyze, decode or score runs "
                 f"({'open it in Search and sweeps' if kind in ('search', 'sweep', 'sweep_summary') else 'start one on Compare'}).")


page()
