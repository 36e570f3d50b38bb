"""What changed (the default page) and Paired samples (AppTest) on fixture runs and a real tiny-random analysis."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cdx.analysis.quick import quick_summary
from cdx.io import atomic_write_json, read_records
from tests.app.app_fixtures import LOGP, PAIRED, view, write_analysis_run, write_search_run, write_text_run
from tests.conftest import compose


def open_page(name: str, run_dir=None) -> AppTest:
    at = AppTest.from_file(view(name), default_timeout=60)
    if run_dir is not None:
        at.session_state["run_dir"] = str(run_dir)
    return at.run()


def charts(at: AppTest) -> dict:
    return {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}


def test_default_page_shows_words_forest_and_pairs_without_a_click(app_root):
    write_analysis_run(app_root / "outputs" / "2026-01-01" / "11-00-00")
    at = open_page("overview.py")  # no run chosen: the newest analysis under outputs/ opens by itself
    assert not at.exception and not at.error
    assert at.session_state["run_dir"] == ""  # shown, not chosen: other pages do not open an analysis by default
    figs = charts(at)
    assert set(figs) == {"ov_words", "ov_forest"}
    words = figs["ov_words"]["data"][0]
    # Each fixture word is one token with fixed log-probs: its delta is log p_c - log p_s of that token.
    want = {w: c - s for w, (s, c) in LOGP.items()}
    assert dict(zip(words["y"], words["x"])) == want
    assert words["y"] == sorted(want, key=want.get)  # most avoided at the bottom, most favoured on top
    forest = figs["ov_forest"]
    assert forest["data"][0]["x"] == [0.7] and forest["data"][0]["text"] == ["talks like a pirate"]
    assert forest["data"][0]["error_x"]["array"] == [pytest.approx(0.84 - 0.7)]
    assert sorted(s["x0"] for s in forest["layout"]["shapes"]) == [-0.3, 0, 0.3]  # zero and ±MDE
    prompts = [m.value for m in at.markdown if m.value.startswith("**Prompt")]
    # Three pairs, those where the validated finding shows on one side only first (prompt 3 has none).
    assert prompts == ["**Prompt 0** · cluster *greetings*: Hi?", "**Prompt 1** · cluster *greetings*: Weather?",
                       "**Prompt 2** · cluster *things*: Food?"]
    cards = [m.value for m in at.markdown if "cdx-pair" in m.value and "comparison ·" in m.value]
    assert "<mark>Arr</mark> <mark>matey</mark> hello" in cards[0] and "✔ talks like a pirate" in cards[0]


def test_no_validated_finding_shows_the_tested_ones_and_the_mde(app_root):
    run = write_analysis_run(app_root / "outputs" / "a", validated=(False, False))
    at = open_page("overview.py", run)
    assert not at.exception and not at.error
    assert any("No validated finding in this run (minimum detectable effect 0.30)" in i.value for i in at.info)
    forest = charts(at)["ov_forest"]["data"][0]
    assert sorted(forest["x"]) == [pytest.approx(0.2), pytest.approx(0.7)]
    assert forest["marker"]["symbol"] == ["circle-open", "circle-open"]  # none validated: open circles
    assert any("no validated difference among 2 hypotheses" in m.value for m in at.markdown)


@pytest.fixture(scope="module")
def tiny_analysis(tmp_path_factory):
    """A real task=analyze run on the tiny random pair (held-out samples, clusters, no finding)."""
    from cdx.tasks.analyze import run

    out = tmp_path_factory.mktemp("analyze")
    run(compose(["task=analyze", "model=tiny_random", "prompts.limit=24", "analysis.sample.max_new_tokens=6",
                 "report.color=false", "knowledge.enabled=false"], output_dir=out))
    return out


def test_a_real_analysis_run_pairs_its_held_out_samples(app_root, tiny_analysis):
    at = open_page("overview.py", tiny_analysis)
    assert not at.exception and not at.error
    summary = json.loads((tiny_analysis / "analysis.json").read_text())
    assert any(f"could detect with 80% power is {summary['mde_80']:.2f}" in m.value for m in at.markdown)
    val = read_records(tiny_analysis / "validation.jsonl")
    prompts = [m.value for m in at.markdown if m.value.startswith("**Prompt")]
    first = sorted({r["prompt_index"] for r in val})[:3]
    assert [p.split("**")[1] for p in prompts] == [f"Prompt {i}" for i in first]
    assert "analysis.html (the run's report)" in [b.proto.label for b in at.get("download_button")]
    at = open_page("paired.py", tiny_analysis)
    assert not at.exception and not at.error
    n_pairs = sum(r["mode"] == "plain_c" for r in val)
    assert f"{n_pairs} of {n_pairs} pairs shown" in [c.value for c in at.caption]
    assert len([m for m in at.markdown if m.value.startswith("**Prompt")]) == min(n_pairs, 10)  # one page


def test_a_decode_run_shows_its_what_changed_lines(app_root):
    run = write_text_run(app_root / "outputs" / "d", 6)
    summary = json.loads((run / "summary.json").read_text())
    lines = quick_summary(read_records(run / "generations.jsonl"), "b")  # what task=decode writes
    atomic_write_json(run / "summary.json", summary | {"what_changed": lines})
    at = open_page("overview.py", run)
    assert not at.exception and not at.error
    assert [m.value for m in at.markdown if m.value.startswith("- ")] == [f"- {line}" for line in lines]
    assert "ov_words" in charts(at)


def test_another_kind_of_run_is_a_message(app_root):
    run = write_search_run(app_root / "outputs" / "s")
    at = open_page("overview.py", run)
    assert not at.exception
    assert [e.value for e in at.error] == [f"{run} is a search run; this page shows analyze, decode or score runs "
                                           "(open it in Search and sweeps)."]


def test_a_damaged_findings_line_is_left_out_and_said(app_root):
    run = write_analysis_run(app_root / "outputs" / "a")
    with (run / "findings.jsonl").open("a") as f:
        f.write('{"id": "h9", "statement": "half a line\n')
    for name in ("overview.py", "findings.py"):
        at = open_page(name, run)
        assert not at.exception and not at.error
        assert any("1 damaged line(s) in the run's findings, samples or behaviours" in w.value for w in at.warning), name


@pytest.mark.parametrize("bad", ['{"id": "h9"}', '{"id": "h8", "statement": "x", "effect": "large"}', "[1, 2]"])
def test_a_findings_line_that_is_json_but_no_finding_is_left_out(app_root, bad):
    run = write_analysis_run(app_root / "outputs" / "a")
    with (run / "findings.jsonl").open("a") as f:
        f.write(bad + "\n")
    for name in ("overview.py", "findings.py", "paired.py"):
        at = open_page(name, run)
        assert not at.exception and not at.error, name
        if name != "paired.py":
            assert any("1 damaged line(s) in the run's findings, samples or behaviours" in w.value for w in at.warning), name


def test_a_finding_with_null_numbers_shows_blanks(app_root):
    run = write_analysis_run(app_root / "outputs" / "a")
    rows = read_records(run / "findings.jsonl")
    rows[1] |= {"effect": None, "effect_ci": None, "q": None, "p": None, "id": 7}  # an int id, as older runs wrote
    (run / "findings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = open_page("findings.py", run)
    assert not at.exception and not at.error
    assert [e.label for e in at.expander if "sea" in e.label] == [
        "Unsupported hypothesis: mentions the sea (q=0.2 above the FDR 0.05) · effect – · q –"]
    at = open_page("overview.py", run)
    assert not at.exception and not at.error


def test_no_run_at_all_says_how_to_make_one(app_root):
    at = open_page("overview.py")
    assert not at.exception and not at.error
    assert any(i.value.startswith("No run yet. Start one on **Compare**") for i in at.info)


def test_paired_view_slices_by_cluster_and_finding(app_root):
    run = write_analysis_run(app_root / "outputs" / "a")
    at = open_page("paired.py", run)
    assert not at.exception and not at.error
    rates = at.dataframe[0].value.set_index("finding")
    # counted by hand from the fixture texts: 'arr|matey' in 0/4 starting, 3/4 comparison; 'sea' in 0 and 1
    assert rates.loc["✔ talks like a pirate", "comparison"] == "3/4" and rates.loc["mentions the sea", "comparison"] == "1/4"
    at.selectbox(key="pv_cluster").set_value("things").run()
    rates = at.dataframe[0].value.set_index("finding")
    assert rates.loc["✔ talks like a pirate", "comparison"] == "1/2"
    assert rates.loc["✔ talks like a pirate", "difference"] == pytest.approx(0.5)
    at.selectbox(key="pv_cluster").set_value("all").run()
    at.selectbox(key="pv_finding").set_value("h1").run()
    shown = [m.value for m in at.markdown if m.value.startswith("**Prompt")]
    want = [f"**Prompt {i}** · cluster *{['greetings', 'things'][c]}*: {p}"
            for i, (p, c, s, t) in enumerate(PAIRED) if "sea" in s or "sea" in t]
    assert shown == want


def test_findings_page_shows_the_texts_behind_a_findings_counts(app_root):
    run = write_analysis_run(app_root / "outputs" / "a")
    at = open_page("findings.py", run)
    assert not at.exception
    behind = [m.value for m in at.markdown if m.value.startswith("**Texts behind the counts**")]
    assert behind[0] == "**Texts behind the counts** (held-out pairs: starting 0/4, comparison 3/4)"
    starting_cards = [m.value for m in at.markdown if "starting ·" in m.value]
    assert any("Hello there friend" in c for c in starting_cards)  # both sides shown, not only the comparison's


def test_findings_are_ranked_validated_first_then_by_q_then_effect(app_root):
    run = write_analysis_run(app_root / "outputs" / "a")
    base = read_records(run / "findings.jsonl")[1]
    rows = [base | {"id": "hq1", "statement": "q high", "q": 0.5, "effect": 0.9},
            base | {"id": "hv", "statement": "valid", "q": 0.04, "validated": True, "reason": ""},
            base | {"id": "he1", "statement": "small effect", "q": 0.1, "effect": 0.1},
            base | {"id": "he2", "statement": "big effect", "q": 0.1, "effect": -0.6},
            base | {"id": "hu", "statement": "too few", "q": 1.0, "effect": 0.0,
                    "reason": "too few held-out texts (5 starting, 5 comparison; need 10)"}]
    (run / "findings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    at = open_page("findings.py", run)
    table = at.dataframe[0].value
    assert list(table["id"]) == ["hv", "he2", "he1", "hq1", "hu"]
    assert table["finding"].iloc[-1] == ("Untested hypothesis: too few (too few held-out texts (5 starting, "
                                         "5 comparison; need 10))")
    assert list(table["finding"].iloc[1:4]) == [f"Unsupported hypothesis: {s} (q=0.2 above the FDR 0.05)"
                                                for s in ("big effect", "small effect", "q high")]
    assert np.isfinite(table["q"]).all()


@pytest.mark.parametrize("damage", ["validation-line", "clusters-json"])
def test_damaged_samples_or_clusters_still_show_the_rest(app_root, damage):
    run = write_analysis_run(app_root / "outputs" / "a")
    if damage == "validation-line":
        lines = (run / "validation.jsonl").read_text().splitlines()
        lines[1] = lines[1][:25]  # prompt 0's comparison sample cut mid-record
        (run / "validation.jsonl").write_text("\n".join(lines) + "\n")
    else:
        (run / "clusters.json").write_text("{not json")
    at = open_page("overview.py", run)
    assert not at.exception and not at.error
    prompts = [m.value for m in at.markdown if m.value.startswith("**Prompt")]
    if damage == "validation-line":
        assert [p.split("**")[1] for p in prompts] == ["Prompt 1", "Prompt 2", "Prompt 3"]  # prompt 0 has no pair
    else:
        assert prompts[0] == "**Prompt 0**: Hi?"  # no cluster named, the pair still shown


def test_a_run_without_held_out_samples_shows_the_kept_evidence_highlighted(app_root):
    run = write_analysis_run(app_root / "outputs" / "a")
    (run / "validation.jsonl").unlink()  # an analysis stopped before validation kept them, or an older one
    at = open_page("findings.py", run)
    assert not at.exception and not at.error
    cards = [m.value for m in at.markdown if "cdx-pair" in m.value and "comparison · v00000-plain_c-0" in m.value]
    assert cards and "<mark>Arr</mark> <mark>matey</mark> hello" in cards[0]
    at = open_page("overview.py", run)
    assert not at.exception and not at.error
    assert any("has no held-out samples (validation.jsonl) to pair" in i.value for i in at.info)


def test_the_app_opens_on_what_changed_and_the_docs_name_every_page_url(app_root):
    from tests.app.app_fixtures import APP

    at = AppTest.from_file(str(APP / "main.py"), default_timeout=60).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["What changed"]  # the default page, served at /
    source = (APP / "main.py").read_text()
    urls = re.findall(r'\("\w+\.py", "[^"]+", "[^"]+", "([a-z-]+)"\)', source)  # PAGES: (file, title, icon, url)
    assert len(urls) == 7 and urls[0] == "what-changed"
    docs = (APP.parents[1] / "docs" / "app.md").read_text()
    named = re.search(r"\(pages: `/` for What changed,\s*(.+?)\)", docs, re.S).group(1)
    assert sorted(re.findall(r"`([a-z-]+)`", named)) == sorted(urls[1:])  # every other page by its URL


def test_an_analysis_leads_with_its_behaviours_and_their_other_sides(app_root):
    """behaviours.jsonl as the validate stage writes it: a behaviour, its other side, a word shift and an
    unvalidated behaviour. The page states the first with its numbers, nests the other side under it,
    marks the word shift and leaves the unvalidated one out; the headline counts behaviours."""
    from cdx.analysis.behaviours import Behaviour, write_behaviours
    from cdx.analysis.scope import Scope

    run = write_analysis_run(app_root / "outputs" / "b")

    def b(id_, statement, side="gained", kind="behaviour", validated=True, other_side_of=None):
        return Behaviour(id=id_, statement=statement, side=side, kind=kind, size="large", scope=Scope(),
                         checker={"type": "string", "value": "ye"}, k_s=2, n_s=81, k_c=33, n_c=81,
                         rate_s=2 / 81, rate_c=33 / 81, rate_s_ci=(0.0, 0.1), rate_c_ci=(0.3, 0.5), effect=0.38,
                         effect_ci=(0.27, 0.49), p=1e-9, q=7.3e-9, validated=validated, members=["h1"],
                         member_statements=["says 'ye'"], other_side_of=other_side_of)

    write_behaviours(run / "behaviours.jsonl", [
        b("b1", 'the comparison model writes "ye" more often (with \'ye\', \'aye\')'),
        b("b2", "the comparison model says 'the' less often", side="lost", kind="other side", other_side_of="b1"),
        b("b3", "word-frequency shift, no distinctive phrase: the comparison model says 'in' less often",
          side="lost", kind="word-frequency shift"),
        b("b4", "the comparison model writes *bold* more often", validated=False),
    ])
    at = open_page("overview.py", run)
    assert not at.exception and not at.error
    block = next(m.value for m in at.markdown if m.value.startswith("- ✔"))
    assert block.splitlines() == [
        "- ✔ the comparison model writes \"ye\" more often (with 'ye', 'aye'): 33/81 vs 2/81, effect +0.38 "
        "[0.27, 0.49], q=7.3e-09; all prompts",
        "    - its other side (nothing on these texts tells them apart): the comparison model says 'the' less "
        "often: 33/81 vs 2/81, q=7.3e-09",
        "- ~ word-frequency shift, no distinctive phrase: the comparison model says 'in' less often: 33/81 vs 2/81, "
        "effect +0.38 [0.27, 0.49], q=7.3e-09; all prompts",
    ]
    assert any("word-frequency shift: validated word rates" in c.value for c in at.caption)
    assert "1 behaviour(s) from 1 validated finding(s)" in at.markdown[0].value
    (run / "behaviours.jsonl").write_text((run / "behaviours.jsonl").read_text() + "{not json\n")
    at = open_page("overview.py", run)
    assert any("1 damaged line(s)" in w.value for w in at.warning)  # a damaged line is counted, the rest shown
