"""OpenAIAssistant against a loopback server that answers 429, 500, slowly, or with 401."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from omegaconf import open_dict

from cdx.assistant import AssistantAuthError, AssistantError, OpenAIAssistant
from cdx.io import read_records
from cdx.run import run
from cdx.search import SearchFailed
from cdx.tasks.common import build_assistant
from tests.conftest import compose, patience

MSG = [{"role": "user", "content": "Write prompts."}]


def completion(text: str) -> dict:
    return {"id": "c1", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's name
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        action = srv.plan.pop(0) if len(srv.plan) > 1 else srv.plan[0]
        if action == "slow":
            time.sleep(1.0)
            action = "ok"
        if action == "401-echo":  # a server that echoes the key it was given
            status, payload = 401, {"error": {"message": f"invalid key {self.headers.get('Authorization')}"}}
        else:
            status, payload = (200, completion(srv.reply)) if action == "ok" else (int(action), {"error": {"message": action}})
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.plan, srv.requests, srv.reply = ["ok"], [], "1. A prompt from the server?"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    yield srv
    srv.shutdown()
    srv.server_close()


def assistant(server, **kw) -> OpenAIAssistant:
    opts = dict(model="m", base_url=server.url, api_key_env=None, timeout=0.3, max_retries=3,
                backoff_initial=0.01, backoff_max=0.05)
    return OpenAIAssistant(**{**opts, **kw})


def test_retries_429_500_and_timeouts_then_succeeds(server, caplog):
    server.plan = ["429", "500", "slow", "ok"]
    with caplog.at_level(logging.WARNING, logger="cdx.assistant._openai"):
        reply = assistant(server).complete(MSG, temperature=0.2, max_tokens=33)
    assert reply == server.reply and len(server.requests) == 4
    assert [r.getMessage().split(";")[0] for r in caplog.records] == [
        "assistant request HTTP 429 (RateLimitError)", "assistant request HTTP 500 (InternalServerError)",
        "assistant request timed out"]
    body = server.requests[-1]["body"]
    assert (body["model"], body["temperature"], body["max_tokens"], body["messages"]) == ("m", 0.2, 33, MSG)


def test_backoff_doubles_up_to_its_maximum(server, caplog):
    server.plan = ["503"]
    with caplog.at_level(logging.WARNING, logger="cdx.assistant._openai"), pytest.raises(AssistantError) as err:
        assistant(server, max_retries=3, backoff_initial=0.02, backoff_max=0.05).complete(MSG)
    waits = [r.getMessage().rsplit("in ", 1)[1] for r in caplog.records]
    assert waits == ["0.02 s", "0.04 s", "0.05 s"]  # 0.02 * 2**k, capped at 0.05
    assert len(server.requests) == 4
    assert "failed after 4 attempts: HTTP 503" in str(err.value) and server.url in str(err.value)


def test_authentication_failure_is_clear_and_not_retried(server, monkeypatch):
    server.plan = ["401"]
    monkeypatch.setenv("CDX_TEST_KEY", "sk-test-123")
    with pytest.raises(AssistantAuthError, match="refused the credentials.*HTTP 401.*api_key_env"):
        assistant(server, api_key_env="CDX_TEST_KEY").complete(MSG)
    assert len(server.requests) == 1 and server.requests[0]["auth"] == "Bearer sk-test-123"
    monkeypatch.delenv("CDX_TEST_KEY")
    with pytest.raises(AssistantAuthError, match="CDX_TEST_KEY"):
        assistant(server, api_key_env="CDX_TEST_KEY")


def test_other_client_errors_are_not_retried(server):
    server.plan = ["400"]
    with pytest.raises(AssistantError, match=r"\(not retried\): HTTP 400"):
        assistant(server).complete(MSG)
    assert len(server.requests) == 1


def test_search_counts_a_dead_endpoint_as_failed_cycles_but_stops_on_auth(server, tmp_path):
    base = ["task=search", "model=tiny_random", "assistant=openai", f"assistant.base_url={server.url}",
            "assistant.api_key_env=null", "assistant.timeout=0.3", "assistant.max_retries=1",
            "assistant.backoff_initial=0.01", "assistant.backoff_max=0.01", "assistant.model=served",
            f"assistant.cache.dir={tmp_path}/cache", "search.max_new_tokens=4", "report.print_top=false"]
    server.plan = ["500"]
    cfg = compose([*base, "search.max_failed_cycles=2"], tmp_path / "down")
    with pytest.raises(SearchFailed):
        run(cfg)
    recs = read_records(tmp_path / "down" / "stats.jsonl")
    assert [r["reason"] for r in recs] == ["the assistant request failed"] * 2 and len(server.requests) == 4
    server.plan = ["401"]
    with pytest.raises(AssistantAuthError):
        run(compose(base, tmp_path / "auth"))
    server.plan = ["ok"]
    result = run(compose([*base, "search.n_cycles=1"], tmp_path / "up"))
    assert result["n_added"] == 1 and server.requests[-1]["body"]["model"] == "served"
    a = build_assistant(compose(base).assistant)
    assert a.cache_dir == tmp_path / "cache" and a.inner.max_retries == 1 and a.inner.model == "served"
    with open_dict(cfg):
        cfg.assistant.timeout = -1
    with pytest.raises(Exception, match="timeout=-1"):  # Hydra wraps the ValueError
        build_assistant(cfg.assistant)


def dead_url() -> str:
    """A loopback URL where nothing listens (the port was bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def test_dead_port_fails_fast_with_advice_that_fits(caplog):
    from cdx.assistant import AssistantFatalError, AssistantUnreachable

    url = dead_url()
    a = OpenAIAssistant(model="m", base_url=url, api_key_env=None, timeout=5.0, max_retries=2,
                        backoff_initial=0.05, backoff_max=0.1)
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="cdx.assistant._openai"), pytest.raises(AssistantUnreachable) as err:
        a.complete(MSG)
    elapsed = time.monotonic() - start
    assert elapsed < 0.05 + 0.1 + min(patience(2.0), 9.0)  # the two backoff waits, plus slack; far below timeout * attempts
    assert len(caplog.records) == 2  # retried max_retries times
    msg = str(err.value)
    assert "connection refused" in msg and f"is the server running at {url}" in msg and "raise" not in msg
    assert isinstance(err.value, AssistantFatalError)  # the search stops at once instead of counting failed cycles


def test_timeout_advice_names_the_timeout(server):
    server.plan = ["slow"]
    with pytest.raises(AssistantError, match=r"no reply within assistant.timeout=0.3 s.*raise assistant.timeout"):
        assistant(server, max_retries=1).complete(MSG)


def test_auth_error_does_not_chain_the_servers_reply(server, monkeypatch):
    import traceback

    server.plan = ["401-echo"]
    monkeypatch.setenv("CDX_TEST_KEY", "sk-secret-456")
    with pytest.raises(AssistantAuthError) as err:
        assistant(server, api_key_env="CDX_TEST_KEY").complete(MSG)
    assert err.value.__cause__ is None
    assert "sk-secret-456" not in "".join(traceback.format_exception(err.value))
