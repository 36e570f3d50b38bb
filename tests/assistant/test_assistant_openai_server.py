"""The real openai client against a real OpenAI-compatible server on loopback: `transformers serve`
serving the embedded SmolLM2-135M-Instruct from its converted local directory."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cdx.assistant import OpenAIAssistant
from cdx.io import read_records
from cdx.run import run
from cdx.search import SearchFailed
from tests.conftest import compose, patience

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(base_url, model id) of `transformers serve <converted dir>`, stopped after the module."""
    from cdx.models.embedded import embedded_gguf
    from cdx.models.gguf_cache import converted_dir

    model = str(converted_dir(*embedded_gguf("smollm2-135m-instruct")))
    port = free_port()
    cli = Path(sys.executable).with_name("transformers")
    log = (tmp_path_factory.mktemp("serve") / "serve.log").open("w")
    cmd = [str(cli), "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + patience(180)
        while True:
            if proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline:
                    pytest.fail(f"transformers serve did not start in 180 s; see {log.name}")
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1", model
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_openai_client_gets_a_chat_reply(served):
    url, model = served
    a = OpenAIAssistant(model=model, base_url=url, api_key_env=None, timeout=120, max_retries=1)
    reply = a.complete([{"role": "system", "content": "You answer briefly."},
                        {"role": "user", "content": "Name three colours as a numbered list."}],
                       temperature=0.0, max_tokens=30)
    assert isinstance(reply, str) and reply.strip()


def test_search_with_the_served_assistant_and_its_cache(served, tmp_path):
    url, model = served
    base = ["task=search", "model=tiny_random", "assistant=openai", f"assistant.base_url={url}",
            f"assistant.model={model}", "assistant.api_key_env=null", "assistant.timeout=120",
            f"assistant.cache.dir={tmp_path}/cache", "search.n_cycles=1", "search.max_failed_cycles=2",
            "search.max_new_tokens=4", "search.assistant_max_tokens=80", "report.print_top=false"]
    try:
        run(compose(base, tmp_path / "first"))
    except SearchFailed:
        pass  # a 135M assistant may write no list twice in a row; the wiring is what is tested here
    first = [t for r in read_records(tmp_path / "first" / "stats.jsonl") for t in r["replies"]]
    assert first and all(isinstance(t, str) and t.strip() for t in first)
    entries = sorted((tmp_path / "cache").rglob("*.json"))
    assert len(entries) == len(first)
    for path in entries:  # the second run must read these, not ask the server
        entry = json.loads(path.read_text())
        assert entry["request"]["assistant"] == f"openai:{url}/:{model}"
        path.write_text(json.dumps({**entry, "reply": "1. A cached prompt?"}))
    run(compose(base, tmp_path / "second"))
    second = read_records(tmp_path / "second" / "stats.jsonl")
    assert second[0]["replies"] == ["1. A cached prompt?"]
    assert read_records(tmp_path / "second" / "bank.jsonl")[-1]["prompt"] == "A cached prompt?"
