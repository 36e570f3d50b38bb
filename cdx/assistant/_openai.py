"""Any OpenAI-compatible chat endpoint through the `openai` client, with tenacity retries."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from cdx.assistant._base import AssistantAuthError, AssistantError, AssistantUnreachable, Message, check_messages

log = logging.getLogger(__name__)


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: timeouts and connection errors, 429 (rate limit) and any 5xx."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    return isinstance(exc, openai.APIStatusError) and (exc.status_code == 429 or exc.status_code >= 500)


def describe(exc: BaseException) -> str:
    if isinstance(exc, openai.APITimeoutError):
        return "timed out"
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code} ({type(exc).__name__})"
    cause = unreachable_cause(exc)
    if cause:
        return cause
    return f"{type(exc).__name__}: {exc}"


def unreachable_cause(exc: BaseException) -> str | None:
    """'connection refused' or 'unknown host' when nothing answers at the URL (None otherwise).

    The openai client wraps httpx's ConnectError, which wraps the socket error: walk the chain.
    """
    if not isinstance(exc, openai.APIConnectionError) or isinstance(exc, openai.APITimeoutError):
        return None
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError) or "connection refused" in str(seen).lower():
            return "connection refused"
        if isinstance(seen, socket.gaierror) or "name or service not known" in str(seen).lower():
            return "unknown host"
        seen = seen.__cause__ or seen.__context__
    return None


class OpenAIAssistant:
    """Chat completions from `base_url` (OpenAI itself when null).

    The key is read from the environment variable named by `api_key_env`, never from a file; set
    `api_key_env: null` for a server that needs no key (e.g. `transformers serve` on loopback).
    The client's own retries are off (`max_retries=0`): tenacity retries timeouts, 429 and 5xx
    with exponential backoff (`backoff_initial * 2**k` seconds, at most `backoff_max`), then raises
    `AssistantError` with advice that fits the cause: `AssistantUnreachable` when nothing listens at
    the URL (connection refused, unknown host). An authentication failure raises `AssistantAuthError` at once. The request's
    `seed` is not sent (not every server accepts it); it only keys the reply cache.
    """

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout: float = 60.0,
        max_retries: int = 5,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
    ):
        if max_retries < 0 or timeout <= 0:
            raise ValueError(f"max_retries={max_retries} must be >= 0 and timeout={timeout} > 0")
        self.model, self.base_url = model, base_url
        self.max_retries, self.backoff_initial, self.backoff_max = max_retries, backoff_initial, backoff_max
        self.client = openai.OpenAI(api_key=_api_key(api_key_env), base_url=base_url, timeout=timeout, max_retries=0)

    @property
    def cache_id(self) -> str:
        return f"openai:{self.client.base_url}:{self.model}"

    def complete(
        self, messages: Sequence[Message], temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        msgs = check_messages(messages)
        retrying = Retrying(
            retry=retry_if_exception(is_transient),
            wait=wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max),
            stop=stop_after_attempt(self.max_retries + 1),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            resp = retrying(self.client.chat.completions.create, model=self.model, messages=msgs,
                            temperature=temperature, max_tokens=max_tokens)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise AssistantAuthError(
                f"{self.client.base_url} refused the credentials ({describe(e)}) for model {self.model!r}: "
                "check the API key in the environment variable named by assistant.api_key_env"
            ) from None  # the server's reply may echo the key: never chain it into tracebacks or error.json
        except openai.OpenAIError as e:
            raise self._failure(e) from e
        if not resp.choices:
            return ""
        return resp.choices[0].message.content or ""

    def _failure(self, e: BaseException) -> AssistantError:
        """The error to raise after the last attempt, with advice that fits its cause."""
        url = self.client.base_url
        tries = f"after {self.max_retries + 1} attempts" if is_transient(e) else "(not retried)"
        head = f"assistant request to {url} (model {self.model!r}) failed {tries}: {describe(e)}"
        cause = unreachable_cause(e)
        if cause == "connection refused":
            return AssistantUnreachable(f"{head}: is the server running at {url}? Start it, or fix assistant.base_url")
        if cause == "unknown host":
            return AssistantUnreachable(f"{head}: check the host name in assistant.base_url")
        if isinstance(e, openai.APITimeoutError):
            return AssistantError(f"{head}: no reply within assistant.timeout={self.client.timeout} s; the server is "
                                  "up but slow: raise assistant.timeout or serve a smaller model")
        return AssistantError(head)

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("assistant request %s; retry %d/%d in %.2f s", describe(exc) if exc else "failed", state.attempt_number,
                    self.max_retries, wait)


def _api_key(env: str | None) -> str:
    if env is None:
        return "no-key"  # the client insists on a string; servers without auth ignore it
    key = os.environ.get(env)
    if not key:
        raise AssistantAuthError(
            f"the OpenAI-compatible assistant needs an API key in the environment variable {env!r} "
            f"(export {env}=...), or assistant.api_key_env=null for a server without authentication"
        )
    return key
