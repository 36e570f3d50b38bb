"""The app's figures against independent computations of the same numbers, and the explorer's plot defaults."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from cdx.app import plots
from cdx.app.paired import highlight_html
from cdx.io import read_records
from tests.app.app_fixtures import view, write_search_run, write_sweep, write_text_run


def test_position_profile_is_the_mean_and_ci_per_position():
    records = [{"tokens": {"kl_sc": [1.0, 2.0, 3.0]}}, {"tokens": {"kl_sc": [3.0, 4.0]}}, {"tokens": {"kl_sc": [5.0]}}]
    prof = plots.position_profile(records, "kl_sc")
    assert list(prof["n"]) == [3, 2, 1]
    assert list(prof["mean"]) == [3.0, 3.0, 3.0]
    sd0 = math.sqrt(((1 - 3) ** 2 + 0 + (5 - 3) ** 2) / 2)  # sample sd of 1, 3, 5
    assert prof["high"][0] == pytest.approx(3.0 + 1.96 * sd0 / math.sqrt(3))
    assert math.isnan(prof["low"][2])  # one text: no band, not a zero-width one


def test_sweep_curves_draw_a_band_from_the_ci_columns():
    table = pd.DataFrame({"x": [1.0, 0.0], "kl_sc_mean": [0.3, 0.1], "kl_sc_ci95_low": [0.2, 0.05],
                          "kl_sc_ci95_high": [0.4, 0.15], "js_mean": [0.2, 0.1]})
    fig = plots.sweep_curves(table, "x", ["kl_sc_mean", "js_mean"])
    upper, lower, line, js = fig.data
    assert list(upper.y) == [0.15, 0.4] and list(lower.y) == [0.05, 0.2] and lower.fill == "tonexty"
    assert list(line.x) == [0.0, 1.0] and list(line.y) == [0.1, 0.3]
    assert js.name == "js_mean"  # no CI columns: a line without a band


def test_highlight_escapes_and_merges_overlapping_spans():
    assert highlight_html("a <b> arr", [(6, 9), (7, 9), (0, 1)]) == "<mark>a</mark> &lt;b&gt; <mark>arr</mark>"


def test_explorer_distributions_default_to_kl_with_position_and_perplexity_plots(app_root):
    run = write_text_run(app_root / "outputs" / "d", 8)
    at = AppTest.from_file(view("explorer.py"), default_timeout=60)
    at.session_state["run_dir"] = str(run)
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="ex_hist_metric").value == "kl_sc_mean"
    figs = {c.key: json.loads(c.proto.spec) for c in at.get("plotly_chart")}
    records = read_records(run / "generations.jsonl")
    mean0 = sum(r["tokens"]["kl_sc"][0] for r in records) / len(records)
    line = [t for t in figs["ex_position"]["data"] if t.get("name") == "mean kl_sc"][0]
    assert line["y"][0] == pytest.approx(mean0) and len(line["y"]) == max(len(r["tokens"]["kl_sc"]) for r in records)
    kl_ppl = figs["ex_kl_ppl"]
    assert [t["name"] for t in kl_ppl["data"]] == ["perplexity under starting", "perplexity under comparison"]
    assert kl_ppl["layout"]["xaxis"]["type"] == "log"


def test_sweep_and_search_plots_on_their_page(app_root):
    sweep = write_sweep(app_root / "multirun" / "s")
    at = AppTest.from_file(view("search_sweeps.py"), default_timeout=60)
    at.session_state["run_dir"] = str(sweep)
    at.run()
    assert not at.exception and not at.error
    assert [c.key for c in at.get("plotly_chart")] == ["ss_sweep"]
    sweep_fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    table = pd.read_csv(sweep / "summary" / "sweep_summary.csv")
    lower = [t for t in sweep_fig["data"] if t.get("fill") == "tonexty"]
    assert len(lower) == 1 and list(lower[0]["y"]) == list(table["kl_sc_ci95_low"])  # kl_sc's band; js has none
    search = write_search_run(app_root / "outputs" / "search")
    at = AppTest.from_file(view("search_sweeps.py"), default_timeout=60)
    at.session_state["run_dir"] = str(search)
    at.run()
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["layout"]["title"]["text"].startswith("divergence per search cycle")
    assert fig["data"][0]["marker"]["symbol"] == ["circle", "x", "circle"]  # cycle 2 of the fixture failed
