"""The scripted fake and the on-disk reply cache."""

from __future__ import annotations

import json

import pytest

from cdx.assistant import Assistant, AssistantError, CachedAssistant, ScriptedAssistant
from cdx.tasks.common import build_assistant
from tests.conftest import compose

MSG = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


def test_scripted_replies_in_order_loop_match_seed_and_kill():
    a = ScriptedAssistant(["one {seed}", "two"], match={"judge": "yes"}, loop=True, fail_after=4)
    assert isinstance(a, Assistant)
    assert a.complete(MSG, seed=3) == "one 3"
    assert a.complete([{"role": "user", "content": "please judge"}]) == "yes"
    assert a.complete(MSG) == "two"
    assert a.complete(MSG, seed=None) == "one None"
    with pytest.raises(KeyboardInterrupt):
        a.complete(MSG)
    assert [c["seed"] for c in a.calls] == [3, None, None, None]
    once = ScriptedAssistant(["x"])
    assert once.complete(MSG) == "x"
    with pytest.raises(IndexError, match="ran out"):
        once.complete(MSG)
    assert ScriptedAssistant(lambda m, s: f"{len(m)}:{s}").complete(MSG, seed=9) == "2:9"


def test_messages_are_validated():
    with pytest.raises(ValueError, match="role"):
        ScriptedAssistant(["x"]).complete([{"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match="content"):
        ScriptedAssistant(["x"]).complete([{"role": "user"}])


class Counting:
    cache_id = "counting"

    def __init__(self, fail: bool = False):
        self.n, self.fail = 0, fail

    def complete(self, messages, temperature=0.0, max_tokens=256, seed=None):
        self.n += 1
        if self.fail:
            raise AssistantError("down")
        return f"reply {self.n}"


def test_cache_is_keyed_by_the_full_request(tmp_path):
    inner = Counting()
    c = CachedAssistant(inner, tmp_path)
    assert c.complete(MSG, 0.5, 10, 1) == "reply 1"
    assert c.complete(MSG, 0.5, 10, 1) == "reply 1" and inner.n == 1 and (c.hits, c.misses) == (1, 1)
    changed = [(MSG[:1], 0.5, 10, 1), (MSG, 0.6, 10, 1), (MSG, 0.5, 11, 1), (MSG, 0.5, 10, 2)]
    assert [c.complete(*args) for args in changed] == ["reply 2", "reply 3", "reply 4", "reply 5"]
    other = Counting()
    other.cache_id = "another-model"
    assert CachedAssistant(other, tmp_path).complete(MSG, 0.5, 10, 1) == "reply 1" and other.n == 1
    # a new process (new wrapper) reads the same files
    again = Counting()
    assert CachedAssistant(again, tmp_path).complete(MSG, 0.5, 10, 1) == "reply 1" and again.n == 0
    entry = json.loads(c.path(c.request(MSG, 0.5, 10, 1)).read_text())
    assert entry["request"]["messages"] == MSG and entry["reply"] == "reply 1"


def test_cache_disabled_errors_and_corrupt_entries(tmp_path):
    inner = Counting()
    off = CachedAssistant(inner, tmp_path, enabled=False)
    off.complete(MSG)
    off.complete(MSG)
    assert inner.n == 2 and not any(tmp_path.iterdir())
    failing = CachedAssistant(Counting(fail=True), tmp_path)
    with pytest.raises(AssistantError):
        failing.complete(MSG)
    assert not any(tmp_path.rglob("*.json"))  # errors are not cached
    c = CachedAssistant(Counting(), tmp_path)
    c.complete(MSG)
    c.path(c.request(MSG, 0.0, 256, None)).write_text("{not json")
    assert c.complete(MSG) == "reply 2"  # a damaged entry is ignored and rewritten


def test_build_assistant_wraps_the_cache_from_config(tmp_path, monkeypatch):
    cfg = compose(["assistant=scripted", "assistant.cache.enabled=true", f"assistant.cache.dir={tmp_path}/c"])
    a = build_assistant(cfg.assistant)
    assert isinstance(a, CachedAssistant) and a.cache_dir == tmp_path / "c" and isinstance(a.inner, ScriptedAssistant)
    assert isinstance(build_assistant(compose(["assistant=scripted"]).assistant), ScriptedAssistant)
    monkeypatch.setenv("CDX_CACHE_DIR", str(tmp_path / "cdx"))
    local = build_assistant(compose(["assistant.model_path=tiny-random"]).assistant)  # local: cache on by default
    assert isinstance(local, CachedAssistant) and local.cache_dir == tmp_path / "cdx" / "assistant"
