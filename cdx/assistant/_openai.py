"""Any OpenAI-compatible chat endpoint through the `openai` client, with tenacity retries."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import openai
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from cdx.assistant._base import AssistantAuthError, AssistantError, Message, check_messages

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
    return f"{type(exc).__name__}: {exc}"


class OpenAIAssistant:
    """Chat completions from `base_url` (OpenAI itself when null).

    The key is read from the environment variable named by `api_key_env`, never from a file; set
    `api_key_env: null` for a server that needs no key (e.g. `transformers serve` on loopback).
    The client's own retries are off (`max_retries=0`): tenacity retries timeouts, 429 and 5xx
    with exponential backoff (`backoff_initial * 2**k` seconds, at most `backoff_max`), then raises
    `AssistantError`. An authentication failure raises `AssistantAuthError` at once. The request's
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
            ) from e
        except openai.OpenAIError as e:
            tries = f"after {self.max_retries + 1} attempts" if is_transient(e) else "(not retried)"
            raise AssistantError(
                f"assistant request to {self.client.base_url} (model {self.model!r}) failed {tries}: {describe(e)}"
            ) from e
        if not resp.choices:
            return ""
        return resp.choices[0].message.content or ""

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("assistant request %s; retry %d/%d in %.2f s", describe(exc), state.attempt_number,
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
