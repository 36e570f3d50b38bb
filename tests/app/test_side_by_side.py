"""Side by side: streamed tokens are the engine's own, sessions share one cached pair safely, errors are messages."""

from __future__ import annotations

import time

import pytest
import torch
from streamlit.testing.v1 import AppTest

from cdx.app.live import SIDES, LiveRequest, LiveRun, RowRules, StreamingDecoder, load_pair, score_text, wilson
from cdx.decoding import ContrastiveDecoder, ProbDiff, score_rows
from tests.app.app_fixtures import view

TINY = ("model=tiny_random",)


def finish(live: LiveRun, timeout: float = 120) -> LiveRun:
    live.thread.join(timeout)
    assert not live.running, "side-by-side generation did not end"
    return live


@pytest.fixture(scope="module")
def tiny_pair():
    return load_pair(TINY)


def test_streaming_observes_without_changing_the_decoding(tiny_pair):
    rule = ProbDiff(starting_weight=1.0, comparison_weight=-1.0)
    seen = []
    streaming = StreamingDecoder(tiny_pair, rule, max_new_tokens=10, generations_per_prefix=1, batch_size=1, seed=3,
                                 on_step=lambda t, v: seen.append((t[0], v[0])))
    plain = ContrastiveDecoder(tiny_pair, rule, max_new_tokens=10, generations_per_prefix=1, batch_size=1, seed=3)
    got = streaming.generate_batch(["Hello there"])[0]
    want = plain.generate_batch(["Hello there"])[0]
    assert got.token_ids == want.token_ids and got.tokens == want.tokens
    assert [t for t, _ in seen][: len(want.token_ids)] == want.token_ids  # one callback per step, as drawn
    assert [v["kl_sc"] for _, v in seen][: len(want.token_ids)] == pytest.approx(want.tokens["kl_sc"])


def test_row_rules_apply_each_rule_to_its_own_rows():
    torch.manual_seed(0)
    logp_s, logp_c = torch.randn(6, 11).log_softmax(-1), torch.randn(6, 11).log_softmax(-1)
    rules = (ProbDiff(starting_weight=1.0, comparison_weight=0.0), ProbDiff(starting_weight=0.0, comparison_weight=1.0),
             ProbDiff(starting_weight=1.0, comparison_weight=-1.0))
    got = RowRules(rules, 2)(logp_s, logp_c, probs=(logp_s.exp(), logp_c.exp()))
    assert torch.equal(got[0:2], logp_s[0:2]) and torch.equal(got[2:4], logp_c[2:4])  # plain sampling of each model
    assert torch.allclose(got[4:6], rules[2](logp_s[4:6], logp_c[4:6]))
    assert (RowRules(rules, 2).starting_weight, RowRules(rules, 2).comparison_weight) == (1.0, -1.0)


def test_one_batch_gives_each_column_what_its_own_greedy_decode_gives(tiny_pair):
    # greedy: the batched columns must equal three separate decodes token for token (same prompt, no padding)
    live = finish(LiveRun(LiveRequest(TINY, "sample", "Hi", max_new_tokens=6, greedy=True)).start())
    assert live.status == "done", live.error
    for side, (ws, wc) in {"starting": (1.0, 0.0), "comparison": (0.0, 1.0), "contrastive": (1.0, -1.0)}.items():
        ref = ContrastiveDecoder(tiny_pair, ProbDiff(starting_weight=ws, comparison_weight=wc), strategy="greedy",
                                 max_new_tokens=6, generations_per_prefix=1, batch_size=1).generate_batch(["Hi"])[0]
        [stream] = live.streams[side]
        assert stream.done and stream.tokens["kl_sc"] == pytest.approx(ref.tokens["kl_sc"], abs=1e-5), side
        assert [tiny_pair.tokenizer.decode([t]) for t in ref.token_ids] == stream.token_strs, side
        assert ("weighted_kl" in stream.tokens) == (side == "contrastive")


def test_one_decode_call_for_all_columns_and_samples(monkeypatch):
    calls = []
    real = ContrastiveDecoder.generate_batch

    def spy(self, prompts, *a, **k):
        calls.append((len(prompts), self.settings.generations_per_prefix))
        return real(self, prompts, *a, **k)

    monkeypatch.setattr(ContrastiveDecoder, "generate_batch", spy)
    live = finish(LiveRun(LiveRequest(TINY, "sample", "Hi", max_new_tokens=4, samples=3, seed=2)).start())
    assert live.status == "done", live.error
    assert calls == [(3, 3)]  # one batch: 3 columns x 3 samples
    assert all(len(live.streams[s]) == 3 and all(x.done for x in live.streams[s]) for s in SIDES)


def test_two_sessions_at_once_get_what_each_would_get_alone():
    req = LiveRequest(TINY, "sample", "Tell me a story", max_new_tokens=12, seed=7)
    alone = finish(LiveRun(req).start())
    a, b = LiveRun(req).start(), LiveRun(req).start()
    finish(a)
    finish(b)
    for side in alone.streams:
        assert [s.tokens for s in a.streams[side]] == [s.tokens for s in alone.streams[side]] == \
            [s.tokens for s in b.streams[side]]


def test_scoring_a_pasted_text_matches_score_rows(tiny_pair):
    stream = score_text(TINY, "Hi", " there friend")
    ids = tiny_pair.tokenizer(" there friend", add_special_tokens=False).input_ids
    want = score_rows(tiny_pair, [tiny_pair.starting.prompt_ids("Hi")], [tiny_pair.comparison.prompt_ids("Hi")], [ids])[0]
    assert stream.tokens["logp_s"] == pytest.approx(want["logp_s"]) and len(stream.token_strs) == len(ids)


@pytest.mark.parametrize("k, n", [(0, 3), (2, 3), (3, 3), (7, 16)])
def test_wilson_interval_matches_statsmodels(k, n):
    from statsmodels.stats.proportion import proportion_confint

    assert wilson(k, n) == pytest.approx(proportion_confint(k, n, method="wilson"))


def test_page_streams_and_reports_a_bad_adapter(app_root, tmp_path):
    at = AppTest.from_file(view("side_by_side.py"), default_timeout=60)
    at.query_params["model"] = "tiny_random"
    at.run()
    at.number_input(key="sbs_mnt").set_value(5)
    at.button(key="sbs_go").click().run()
    finish(at.session_state["sbs_live"])
    at.run()
    assert not at.exception and not at.error
    captions = [c.value for c in at.caption]
    assert sum(" tokens · mean KL(s‖c) " in c for c in captions) == 9  # 3 columns x 3 samples
    assert sum(c.startswith("3 samples · ended by the model ") for c in captions) == 3  # a rates line per side
    texts = [m.value for m in at.markdown if "class='cdx-tok'" in m.value]
    assert len(texts) == 9
    assert all("tabindex='0'" in t and "top 5 here" in t for t in texts)  # a click shows both models' top 5
    assert any("cdx-colour-bar" in m.value for m in at.markdown)
    at.text_input(key="sbs_adapter").set_value(str(tmp_path / "not-an-adapter"))
    at.button(key="sbs_go").click().run()
    finish(at.session_state["sbs_live"])
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("Could not run this pair: ValueError: Can't find 'adapter_config.json'")


def test_stop_ends_the_generation():
    live = LiveRun(LiveRequest(TINY, "sample", "Hi", max_new_tokens=400)).start()
    time.sleep(0.5)
    live.cancel()
    finish(live)
    assert live.status in ("cancelled", "done")


def _page() -> AppTest:
    at = AppTest.from_file(view("side_by_side.py"), default_timeout=60)
    at.query_params["model"] = "tiny_random"
    return at.run()


def test_an_empty_prompt_is_refused_and_generate_disabled(app_root):
    at = _page()
    at.text_area(key="sbs_prompt").set_value("  \n ").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Give a prompt: the prompt is empty (each column continues it)."]
    assert at.button(key="sbs_go").disabled


def test_system_prompts_are_shown_and_no_stray_none_while_generating(app_root):
    at = _page()
    at.text_area(key="sbs_system").set_value("You are a pirate.").run()
    assert any("comparison system prompt: 'You are a pirate.'" in c.value for c in at.caption)
    at.number_input(key="sbs_mnt").set_value(200)
    at.button(key="sbs_go").click().run()  # the page draws while the run is still loading or generating
    live = at.session_state["sbs_live"]
    try:
        shown = [e.value for e in (*at.markdown, *at.code, *at.json, *at.text) if hasattr(e, "value")]
        assert "None" not in [str(v).strip() for v in shown]
    finally:
        live.cancel()
        finish(live)


def test_a_pasted_text_is_scored_in_the_page_and_an_empty_one_refused(app_root):
    at = _page()
    at.button(key="sbs_score").click().run()
    assert "Paste a text to score: the continuation is empty." in [e.value for e in at.error]
    at.text_area(key="sbs_score_text").set_value(" Arr matey").run()
    at.button(key="sbs_score").click().run()
    assert not at.exception and not at.error
    assert any(" tokens · log p_s " in c.value and "log p_c − log p_s" in c.value for c in at.caption)
