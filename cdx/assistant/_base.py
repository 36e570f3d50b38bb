"""The one interface every assistant implements, and the errors it may raise."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

Message = dict[str, str]
"""One chat message: {"role": "system" | "user" | "assistant", "content": text}."""


class AssistantError(RuntimeError):
    """A request failed for good (e.g. still failing after every retry). The search counts a failed cycle."""


class AssistantFatalError(AssistantError):
    """Asking again cannot help (refused credentials, no server at the URL): the search stops at once."""


class AssistantAuthError(AssistantFatalError):
    """The endpoint refused the credentials. Never retried; the search stops at once."""


class AssistantUnreachable(AssistantFatalError):
    """Nothing answers at the endpoint's URL (connection refused, unknown host) after every retry."""


@runtime_checkable
class Assistant(Protocol):
    """A chat model that answers a list of messages with one text."""

    @property
    def cache_id(self) -> str:
        """Everything besides the request that decides the reply (backend, model, sampling settings)."""
        ...

    def complete(
        self, messages: Sequence[Message], temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        """The reply to `messages`. `seed` is part of the request: it seeds local sampling and keys the cache."""
        ...


def check_messages(messages: Sequence[Message]) -> list[Message]:
    """A validated copy: each message a dict with a known role and a string content."""
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
            raise ValueError(f"message {i} must be a dict with role system, user or assistant; got {m!r}")
        if not isinstance(m.get("content"), str):
            raise ValueError(f"message {i} has no string content: {m!r}")
        out.append({"role": m["role"], "content": m["content"]})
    return out
