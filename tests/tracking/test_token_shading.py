"""Token shading (issue 22): signed log-ratio on a diverging palette, log-probs by surprisal,
disagreement (not agreement) coloured, both log-probs on hover, a colour bar."""

from __future__ import annotations

import re

import pytest

from cdx.tracking.report import LLR, colour_bar_html, colour_scale, render_text_html, shade, token_values

REC = {"prompt": "Hi", "token_strs": ["Arr", " sir", "!"],
       "tokens": {"logp_s": [-6.0, -1.0, -2.0], "logp_c": [-1.0, -3.0, -2.0], "top1_agree": [1.0, 0.0, 1.0],
                  "kl_sc": [0.5, 0.1, 0.0]}}


def _backgrounds(html: str) -> list[tuple[int, int, int]]:
    return [tuple(int(x) for x in m.split(",")) for m in re.findall(r"background:rgb\(([\d,]+)\)", html)]


def test_signed_log_ratio_is_log_pc_minus_log_ps_red_for_comparison_blue_for_starting():
    assert token_values(REC, LLR) == [5.0, -2.0, 0.0]
    scale = colour_scale([REC], LLR)
    assert scale == pytest.approx(4.94)  # 99th percentile of |llr| over 5, 2, 0 (numpy's linear rule)
    red, blue, white = _backgrounds(render_text_html(REC, LLR, scale))
    assert red[0] > red[2] and blue[2] > blue[0] and white == (255, 255, 255)
    assert red == shade(5.0, scale, LLR) == (178, 24, 43)  # full colour at and beyond the scale


def test_log_probs_are_shaded_by_surprisal_not_all_white():
    # before: every log-prob is <= 0 and was clamped to 0, so every token was white
    s = colour_scale([REC], "logp_s")
    assert s > 0
    cols = _backgrounds(render_text_html(REC, "logp_s", s))
    assert cols[0] == (255, 0, 0)  # log p_s = -6: the most surprising token, full red
    assert cols[1][1] > cols[2][1] > cols[0][1]  # -1 lighter than -2 lighter than -6


def test_agreement_is_white_and_disagreement_coloured():
    cols = _backgrounds(render_text_html(REC, "top1_agree", colour_scale([REC], "top1_agree")))
    assert cols == [(255, 255, 255), (255, 0, 0), (255, 255, 255)]


def test_hover_shows_the_value_and_both_log_probs():
    html = render_text_html(REC, "kl_sc", 1.0)
    assert "title='kl_sc=0.5000 · log p_s=-6.000 · log p_c=-1.000'" in html


def test_colour_bar_names_both_ends():
    bar = colour_bar_html(LLR, 2.5)
    assert "-2.5: the starting model likes it more" in bar and "+2.5: the comparison model does" in bar
    assert "linear-gradient" in bar
