"""Side by side: streamed tokens are the engine's own, sessions share one cached pair safely, errors are messages."""

from __future__ import annotations

import time

import pytest
from streamlit.testing.v1 import AppTest

from cdx.app.live import LiveRequest, LiveRun, StreamingDecoder, load_pair
from cdx.decoding import ContrastiveDecoder, ProbDiff
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
                                 on_token=lambda t, v: seen.append((t, v)))
    plain = ContrastiveDecoder(tiny_pair, rule, max_new_tokens=10, generations_per_prefix=1, batch_size=1, seed=3)
    got = streaming.generate_batch(["Hello there"])[0]
    want = plain.generate_batch(["Hello there"])[0]
    assert got.token_ids == want.token_ids and got.tokens == want.tokens
    assert [t for t, _ in seen] == want.token_ids  # one callback per token, in order, as drawn
    assert [v["kl_sc"] for _, v in seen] == pytest.approx(want.tokens["kl_sc"])


def test_three_continuations_are_own_models_and_contrastive(tiny_pair):
    live = finish(LiveRun(LiveRequest(TINY, "sample", "Hi", max_new_tokens=6, seed=1)).start())
    assert live.status == "done", live.error
    for side, (ws, wc) in {"starting": (1.0, 0.0), "comparison": (0.0, 1.0), "contrastive": (1.0, -1.0)}.items():
        ref = ContrastiveDecoder(tiny_pair, ProbDiff(starting_weight=ws, comparison_weight=wc), max_new_tokens=6,
                                 generations_per_prefix=1, batch_size=1, seed=1).generate_batch(["Hi"])[0]
        assert live.streams[side].tokens == ref.tokens, side
        assert live.streams[side].done


def test_two_sessions_at_once_get_what_each_would_get_alone():
    req = LiveRequest(TINY, "sample", "Tell me a story", max_new_tokens=12, seed=7)
    alone = finish(LiveRun(req).start())
    a, b = LiveRun(req).start(), LiveRun(req).start()
    finish(a), finish(b)
    for side in alone.streams:
        assert a.streams[side].tokens == alone.streams[side].tokens == b.streams[side].tokens


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
    assert sum(" tokens · mean KL(s‖c) " in c for c in captions) == 3
    assert sum("cdx-tok" in m.value and "<style>" not in m.value for m in at.markdown) == 3
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
