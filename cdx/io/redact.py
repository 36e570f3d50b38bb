"""Keep secrets out of everything cdx writes or prints.

A secret is the value of an environment variable that a config names as an API key
(`api_key_env: OPENAI_API_KEY`, at any depth), of any variable whose name ends like a credential
(`*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, `*_ACCESS_KEY`), and any value registered with
`add_secrets`. `redact(text)` replaces each with `[REDACTED]`, and also a cut-off echo of one (a
server may quote the first characters of a key): any run of key characters starting with its first
8 characters.

    from cdx.io.redact import redact, add_secrets_from_config, scrub_exception, RedactingFilter
    add_secrets_from_config(cfg_dict)     # once, when a run starts
    print(redact(str(err)))               # or scrub_exception(err) before anything formats it
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections.abc import Iterable

MASK = "[REDACTED]"
MIN_SECRET = 8
"""Shorter values are not treated as secrets (they would mask ordinary words and numbers)."""
_SUFFIXES = ("API_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_ACCESS_KEY", "APIKEY")
_KEY_CHARS = r"[A-Za-z0-9_\-.~+/=]*"
_registered: set[str] = set()


def add_secrets(values: Iterable[str | None]) -> None:
    """Register values to redact for the rest of the process (registering more is always safe)."""
    _registered.update(v for v in values if isinstance(v, str) and len(v) >= MIN_SECRET)


def config_key_envs(config) -> list[str]:
    """Names of the environment variables a config (nested dicts/lists) points to as API keys."""
    out = []
    if isinstance(config, dict):
        for k, v in config.items():
            if str(k).endswith("api_key_env") and isinstance(v, str):
                out.append(v)
            else:
                out.extend(config_key_envs(v))
    elif isinstance(config, list | tuple):
        for v in config:
            out.extend(config_key_envs(v))
    return out


def add_secrets_from_config(config) -> None:
    """Register the values of the env vars `config` names as API keys (and literal `api_key` values)."""
    add_secrets(os.environ.get(name) for name in config_key_envs(config))
    add_secrets(_literal_keys(config))


def _literal_keys(config) -> list[str]:
    if isinstance(config, dict):
        return [v for k, v in config.items() if str(k) in ("api_key", "token", "password") and isinstance(v, str)] + [
            x for v in config.values() for x in _literal_keys(v)]
    if isinstance(config, list | tuple):
        return [x for v in config for x in _literal_keys(v)]
    return []


def known_secrets(environ=None) -> list[str]:
    """Registered secrets plus credential-like environment variables, longest first."""
    environ = os.environ if environ is None else environ
    found = set(_registered)
    found.update(v for k, v in environ.items() if k.upper().endswith(_SUFFIXES) and len(v) >= MIN_SECRET)
    return sorted(found, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """`text` with every known secret (and any echo of its first 8 characters) replaced by [REDACTED]."""
    if not isinstance(text, str) or not text:
        return text
    for s in known_secrets() if secrets is None else secrets:
        if s in text:
            text = text.replace(s, MASK)
        head = s[:MIN_SECRET]
        if head in text:
            text = re.sub(re.escape(head) + _KEY_CHARS, MASK, text)
    return text


def scrub_exception(exc: BaseException | None) -> BaseException | None:
    """Redact, in place, the message of `exc` and of every exception chained to it.

    Whoever prints it afterwards (Hydra, logging, a traceback) then prints no secret.
    """
    seen = set()
    secrets = known_secrets()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.args = tuple(redact(a, secrets) if isinstance(a, str) else a for a in exc.args)
        for name, value in list(vars(exc).items()):
            if isinstance(value, str):
                setattr(exc, name, redact(value, secrets))
        exc = exc.__cause__ or exc.__context__
    return None


def format_exception(exc: BaseException) -> str:
    """The full traceback of `exc` with its chain, redacted."""
    return redact("".join(traceback.format_exception(exc)))


class RedactingFilter(logging.Filter):
    """A logging filter that redacts each record's message (attach it to handlers)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            scrub_exception(record.exc_info[1])
            record.exc_text = None
        if clean != message:
            record.msg, record.args = clean, ()
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Attach one RedactingFilter to every handler of `logger` (default: the root logger)."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
