"""Secrets never reach what cdx writes or prints (cdx.io.redact)."""

import logging
import traceback

from cdx.io.redact import (
    MASK,
    RedactingFilter,
    add_secrets_from_config,
    config_key_envs,
    format_exception,
    known_secrets,
    redact,
    scrub_exception,
)

KEY = "sk-proj-Zq81XkV0fQ2wB7nT5yLr"


def test_the_env_var_a_config_names_is_a_secret(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_CREDENTIAL", KEY)  # a name no suffix rule would catch
    cfg = {"assistant": {"api_key_env": "MY_SERVICE_CREDENTIAL", "model": "m"}, "other": [{"x": 1}]}
    assert config_key_envs(cfg) == ["MY_SERVICE_CREDENTIAL"]
    add_secrets_from_config(cfg)
    assert redact(f"401: invalid key Bearer {KEY}.") == f"401: invalid key Bearer {MASK}."


def test_credential_like_env_vars_and_cut_off_echoes_are_redacted(monkeypatch):
    monkeypatch.setenv("SOME_API_KEY", "abcdefgh12345678")
    monkeypatch.setenv("SHORT_TOKEN", "abc")  # too short to be told from ordinary text
    assert "abcdefgh12345678" in known_secrets() and "abc" not in known_secrets()
    # a server that quotes the start of the key, and one that cuts it with an ellipsis
    assert redact("got abcdefgh1234, expected ...") == f"got {MASK}, expected ..."
    assert redact("key abcdefgh***5678 rejected") == f"key {MASK}***5678 rejected"
    assert redact("nothing secret here abc") == "nothing secret here abc"


def _fail_with_key():
    try:
        raise ConnectionError(f"server said: bad key {KEY}")
    except ConnectionError as inner:
        raise RuntimeError(f"request failed ({KEY[:12]}...)") from inner


def test_scrub_exception_cleans_the_whole_chain_in_place(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    try:
        _fail_with_key()
    except RuntimeError as e:
        err = e
    assert KEY[:8] not in format_exception(err)
    scrub_exception(err)
    text = "".join(traceback.format_exception(err))  # anyone's later print is clean too
    assert KEY[:8] not in text and "server said: bad key [REDACTED]" in text


def test_log_filter_redacts_messages_arguments_and_tracebacks(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    logger = logging.getLogger("cdx.test.redact")
    caplog.handler.addFilter(RedactingFilter())
    try:
        _fail_with_key()
    except RuntimeError:
        logger.exception("assistant failed with %s", KEY)
    assert caplog.records and KEY[:8] not in caplog.text and MASK in caplog.text
