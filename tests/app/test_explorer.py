"""Run explorer page (AppTest) on fixture runs written with cdx.io; bad inputs give messages, not traces."""

from __future__ import annotations

import re
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from cdx.app.runs import load_text_run
from tests.app.app_fixtures import view, write_search_run, write_text_run


def explorer(run_dir) -> AppTest:
    at = AppTest.from_file(view("explorer.py"), default_timeout=60)
    at.session_state["run_dir"] = str(run_dir)
    return at.run()


def shaded_cards(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if "cdx-text" in m.value and "cdx-tok" in m.value and "<style>" not in m.value]


def test_texts_sorted_shaded_and_paginated(app_root):
    run = write_text_run(app_root / "outputs" / "2026-01-01" / "10-00-00", 30)
    at = explorer(run)
    assert not at.exception and not at.error
    loaded = load_text_run(run)
    records, key = loaded.records, loaded.summary.sort_key  # the run's own ranking key is the default
    order = np.argsort([-r["metrics"][key] for r in records], kind="stable")
    heads = [m.value for m in at.markdown if m.value.startswith("**p")]
    assert heads[0].startswith(f"**{records[order[0]]['id']}**")  # most divergent first
    assert len(heads) == 20 and len(shaded_cards(at)) == 20  # default page size
    first = records[order[0]]
    hover = f"kl_sc={first['tokens']['kl_sc'][0]:.4f}"
    assert re.search(rf"title=[\"']{hover}( · log p_s=[^\"']+)?[\"']", shaded_cards(at)[0])  # value on hover
    at.number_input(key="ex_page").set_value(2).run()
    heads = [m.value for m in at.markdown if m.value.startswith("**p")]
    assert len(heads) == 10 and heads[0].startswith(f"**{records[order[20]]['id']}**")
    at.toggle(key="ex_desc").set_value(False).run()
    heads = [m.value for m in at.markdown if m.value.startswith("**p")]
    assert heads[-1].startswith(f"**{records[order[0]]['id']}**")  # ascending: the top one is last


def test_filters_count_what_numpy_counts(app_root):
    run = write_text_run(app_root / "outputs" / "a", 40)
    records = load_text_run(run).records
    cut = float(np.median([r["metrics"]["kl_sc_mean"] for r in records]))
    want = sum(r["metrics"]["kl_sc_mean"] > cut and r["finish_reason"] == "eos" for r in records)
    at = explorer(run)
    at.text_input(key="ex_query").set_value(f'kl_sc_mean > {cut} and finish_reason == "eos"').run()
    assert f"{want} of 40 texts" in [c.value for c in at.caption]
    at.text_input(key="ex_query").set_value("no_such_column > 1").run()
    assert any("not valid pandas syntax" in e.value for e in at.error) and not at.exception
    at.text_input(key="ex_query").set_value("").run()
    at.text_input(key="ex_contains").set_value("Prompt number 3?").run()
    assert "2 of 40 texts" in [c.value for c in at.caption]


def test_summary_and_distributions_tabs(app_root):
    run = write_text_run(app_root / "outputs" / "b", 10)
    at = explorer(run)
    summary = load_text_run(run).summary
    assert [m for m in at.metric if m.label == "n_tokens"][0].value == str(summary.n_tokens)
    # divergence along a text; the histogram, divergence by position and KL against perplexity
    assert [c.key for c in at.get("plotly_chart")] == ["ex_token_plot", "ex_hist", "ex_position", "ex_kl_ppl"]
    at.selectbox(key="ex_plot_id").set_value(at.selectbox(key="ex_plot_id").options[1]).run()
    assert not at.exception


@pytest.mark.parametrize("make, message", [
    (lambda root: root / "missing", "does not exist"),
    (lambda root: write_text_run(root / "r", 2) / "generations.jsonl", "is a file, not a run directory"),
    (lambda root: (root / "empty").mkdir() or root / "empty", "holds no cdx run output"),
    (lambda root: write_search_run(root / "s"), "is a search run, and this page shows decode or score runs; "
                                                 "open it in Search and sweeps"),
])
def test_bad_paths_give_a_message(app_root, make, message):
    at = explorer(make(app_root))
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]


def test_run_found_under_outputs_and_opened_by_url(app_root):
    run = write_text_run(app_root / "outputs" / "2026-01-01" / "10-00-00", 4)
    at = AppTest.from_file(view("explorer.py"), default_timeout=60)
    at.query_params["run"] = str(run)
    at.run()
    assert "[decode] outputs/2026-01-01/10-00-00" in at.selectbox(key="explorer_sel").options
    assert at.selectbox(key="explorer_sel").value == str(run)
    assert "decode run · 4 texts" in at.caption[0].value


def test_ten_thousand_texts_open_in_seconds(app_root):
    run = write_text_run(app_root / "outputs" / "big", 10_000, n_tokens=16)
    t0 = time.perf_counter()
    at = explorer(run)
    first = time.perf_counter() - t0
    assert not at.exception and "decode run · 10000 texts" in at.caption[0].value
    assert len(shaded_cards(at)) == 20  # one page rendered, not 10,000 texts
    t0 = time.perf_counter()
    at.number_input(key="ex_page").set_value(400).run()  # cached: no re-read
    again = time.perf_counter() - t0
    assert not at.exception
    print(f"10,000-text run: first open {first:.1f} s, next page {again:.1f} s")
    assert first < 20 and again < 5  # generous for a loaded 2-core CI machine; typically ~3 s and <1 s


def test_corrupt_lines_are_left_out_with_a_warning(app_root):
    run = write_text_run(app_root / "outputs" / "c", 6)
    with (run / "generations.jsonl").open("a", encoding="utf-8") as f:
        f.write('{"id": "p00099-s00", "prompt": "no tokens here"}\nnot json at all\n')
    at = explorer(run)
    assert not at.exception and not at.error
    assert "decode run · 6 texts" in at.caption[0].value
    assert [w.value for w in at.warning] == ["2 line(s) of the records file are not valid records and are left out."]


def test_both_models_top_tokens_at_a_chosen_position(app_root):
    """A real decode with decoding.record_top_k=3: the explorer lists both models' top tokens at the
    position chosen (a click on the per-token plot sets the same list), as the record holds them."""
    from cdx.run import run
    from tests.conftest import compose

    out = app_root / "outputs" / "2026-01-02" / "10-00-00"
    run(compose(["model=tiny_random", "prompts.limit=2", "decoding.max_new_tokens=5", "decoding.record_top_k=3",
                 "report.print_top=false"], out))
    at = explorer(out)
    assert not at.exception and not at.error
    rec = next(r for r in load_text_run(out).records if r["id"] == at.selectbox(key="ex_plot_id").value)
    cards = [m.value for m in at.markdown if "<div class='cdx-text'" in m.value]
    assert cards and all("tabindex='0'" in c and "cdx-alt" in c for c in cards)  # a click shows alternatives
    at.selectbox(key="ex_alt_pos").set_value(2).run()
    (table,) = [d.value for d in at.dataframe if "rank" in d.value.columns]
    assert list(table["rank"]) == [1, 2, 3]
    for side, key in (("starting", "s"), ("comparison", "c")):
        assert [lp for lp in table[f"{side} log p"]] == pytest.approx([lp for _, lp in rec["top_next"][2][key]])
        names = [t.removesuffix(" (drawn)") for t in table[f"{side} token"]]
        assert names == [repr(tok) for tok, _ in rec["top_next"][2][key]]
        drawn = [t for t in table[f"{side} token"] if t.endswith(" (drawn)")]
        assert drawn == ([repr(rec["token_strs"][2]) + " (drawn)"]
                         if rec["token_strs"][2] in [tok for tok, _ in rec["top_next"][2][key]] else [])


def test_a_run_without_top_tokens_says_how_to_get_them(app_root):
    run = write_text_run(app_root / "outputs" / "2026-01-03" / "10-00-00", 3)
    at = explorer(run)
    assert not at.exception and any("decoding.record_top_k" in c.value for c in at.caption)
    assert not [s for s in at.selectbox if s.key == "ex_alt_pos"]
