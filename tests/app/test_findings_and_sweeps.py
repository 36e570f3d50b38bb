"""Findings and Search-and-sweeps pages (AppTest) on fixture runs; a missing knowledge base is a message."""

from __future__ import annotations

from urllib.parse import quote

import pandas as pd
from streamlit.testing.v1 import AppTest

from cdx.app.runs import discover_runs, run_kind
from cdx.io import read_records
from tests.app.app_fixtures import view, write_analysis_run, write_search_run, write_sweep, write_text_run


def open_page(name: str, run_dir) -> AppTest:
    at = AppTest.from_file(view(name), default_timeout=60)
    if run_dir is not None:
        at.session_state["run_dir"] = str(run_dir)
    return at.run()


def test_findings_of_an_analysis_run(app_root, monkeypatch):
    monkeypatch.delenv("CDX_KNOWLEDGE_PATH", raising=False)
    monkeypatch.setenv("CDX_CACHE_DIR", str(app_root / "cache"))  # no knowledge base there
    run = write_analysis_run(app_root / "outputs" / "analysis")
    at = open_page("findings.py", run)
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["finding"]) == ["talks like a pirate",
                                      "Unsupported hypothesis: mentions the sea (q=0.2 above the FDR 0.05)"]
    assert list(table.columns[:4]) == ["finding", "effect", "effect_ci", "q"]
    assert list(table["effect_ci"])[0] == "[0.55, 0.84]" and list(table["k_c/n_c"]) == ["30/40", "10/40"]
    assert "2 of 2 hypotheses · 1 validated" in [c.value for c in at.caption]
    at.toggle(key="fd_validated").set_value(True).run()
    assert list(at.dataframe[0].value["finding"]) == ["talks like a pirate"]
    assert [(e.label, e.proto.icon) for e in at.expander if "pirate" in e.label] == [
        ("talks like a pirate · effect +0.70 · q 2e-09", ":material/verified:")]
    assert any("No knowledge base yet" in i.value for i in at.info)
    assert not (app_root / "cache" / "knowledge.sqlite").exists()  # looking never creates one


def test_findings_per_pair_from_the_knowledge_base(app_root, monkeypatch):
    monkeypatch.delenv("CDX_KNOWLEDGE_PATH", raising=False)
    monkeypatch.setenv("CDX_CACHE_DIR", str(app_root / "cache"))
    from cdx.knowledge import KnowledgeBase, default_path, record_analysis

    run = write_analysis_run(app_root / "outputs" / "analysis")
    pair = {"starting": {"path": "tiny-random", "seed": 0}, "comparison": {"path": "tiny-random", "seed": 1}}
    out = record_analysis(read_records(run / "findings.jsonl"), kb=default_path(), model=pair, run_dir=run)
    with KnowledgeBase(default_path()) as kb:
        want = kb.findings()
    assert out["n_findings_new"] >= 1 and want
    at = open_page("findings.py", run)
    assert not at.exception and not at.error
    kb_table = at.dataframe[-3].value  # findings, then the chosen one's history and validations
    assert list(kb_table["statement"]) == [f.statement for f in want]
    assert f"{len(want)} findings in {default_path()}" in [c.value for c in at.caption]
    # evidence as text cards (the text itself, its model and record), not JSON strings
    assert "Arr matey hello" in [t.value for t in at.text]
    assert not [t.value for t in at.text if t.value.lstrip().startswith("{")]
    assert any(c.value.startswith("comparison · v00000-plain_c-0") for c in at.caption)
    assert f"[Open its run on What changed](/?run={quote(str(run))})" in [m.value for m in at.markdown]


def test_findings_page_refuses_a_decode_run(app_root):
    run = write_text_run(app_root / "outputs" / "d", 2)
    at = open_page("findings.py", run)
    assert not at.exception
    assert any("is a decode run, and this page shows analyze runs; open it in Run explorer" in e.value
               for e in at.error)


def test_search_bank_and_cycles(app_root):
    run = write_search_run(app_root / "outputs" / "search")
    at = open_page("search_sweeps.py", run)
    assert not at.exception and not at.error
    bank = at.dataframe[0].value
    divs = [r["divergence"] for r in read_records(run / "bank.jsonl")]
    assert len(bank) == 12 and list(bank["divergence"]) == sorted(divs, reverse=True)
    assert at.multiselect(key="ss_cycle_cols").value == ["subsample/divergence/mean", "new/divergence/mean",
                                                         "bank/divergence/mean"]
    assert len(at.get("plotly_chart")) == 1


def test_sweep_table_and_plot(app_root):
    sweep = write_sweep(app_root / "multirun" / "2026-01-01" / "12-00-00")
    at = open_page("search_sweeps.py", sweep)
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    pd.testing.assert_frame_equal(table.reset_index(drop=True), pd.read_csv(sweep / "summary" / "sweep_summary.csv"))
    assert at.selectbox(key="ss_x").value == "model.interpolation"
    assert len(at.get("plotly_chart")) == 1


def test_sweep_without_summary_offers_to_summarize(app_root):
    sweep = write_sweep(app_root / "multirun" / "s")
    (sweep / "summary" / "sweep_summary.csv").unlink()
    at = open_page("search_sweeps.py", sweep)
    assert not at.exception
    assert any("no summary table yet" in i.value for i in at.info)
    assert at.button(key="ss_summarize")


def test_discovery_finds_every_kind(app_root):
    write_text_run(app_root / "outputs" / "2026-01-01" / "a", 2)
    write_search_run(app_root / "outputs" / "2026-01-01" / "b")
    write_analysis_run(app_root / "outputs" / "2026-01-01" / "c")
    sweep = write_sweep(app_root / "multirun" / "x" / "1")
    found = {str(r.path.relative_to(app_root)): r.kind for r in discover_runs([app_root / "outputs",
                                                                              app_root / "multirun"])}
    assert found == {"outputs/2026-01-01/a": "decode", "outputs/2026-01-01/b": "search",
                     "outputs/2026-01-01/c": "analyze", "multirun/x/1": "sweep", "multirun/x/1/0": "decode",
                     "multirun/x/1/1": "decode", "multirun/x/1/2": "decode",
                     "multirun/x/1/summary": "sweep_summary"}
    assert run_kind(sweep) == "sweep"


def test_finding_checkers_leave_out_endings_which_texts_cannot_show():
    from cdx.app.runs import finding_checkers
    from cdx.io.records import FindingRecord

    word = FindingRecord(id="h1", statement="says 'ahoy'", checker={"type": "string", "value": "ahoy"})
    ending = FindingRecord(id="h2", statement="ends its answers by itself",
                           checker={"type": "ending", "max_tokens": None})
    checkers = finding_checkers([word, ending])
    assert set(checkers) == {"h1"} and checkers["h1"].check("Ahoy there")
