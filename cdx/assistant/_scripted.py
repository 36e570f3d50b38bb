"""A scripted assistant for tests: canned replies behind the same interface as the real ones."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cdx.assistant._base import Message, check_messages


class ScriptedAssistant:
    """Answers from a script and records every request in `calls`.

    A request whose text contains a key of `match` gets that key's reply (e.g. the yes/no judge).
    Otherwise the next of `replies` is returned, from the start again when `loop` is true. In a
    reply, `{seed}` becomes the request's seed, so a looped script still writes new prompts each
    cycle and a resumed run gets the same replies as an uninterrupted one. `replies` may also be
    a function of (messages, seed). `fail_after=n` raises KeyboardInterrupt on request n + 1, to
    simulate a killed run.
    """

    def __init__(
        self,
        replies: Sequence[str] | Callable[[list[Message], int | None], str] = (),
        match: dict[str, str] | None = None,
        loop: bool = False,
        fail_after: int | None = None,
    ):
        self.replies = replies if callable(replies) else list(replies)
        self.match = dict(match or {})
        self.loop, self.fail_after = loop, fail_after
        self.calls: list[dict] = []
        self._next = 0

    @property
    def cache_id(self) -> str:
        return "scripted"

    def complete(
        self, messages: Sequence[Message], temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        msgs = check_messages(messages)
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt(f"scripted assistant: simulated kill after {self.fail_after} requests")
        self.calls.append({"messages": msgs, "temperature": temperature, "max_tokens": max_tokens, "seed": seed})
        text = "\n".join(m["content"] for m in msgs)
        for key, reply in self.match.items():
            if key in text:
                return reply
        if callable(self.replies):
            return self.replies(msgs, seed)
        if self._next >= len(self.replies):
            if not self.loop or not self.replies:
                raise IndexError(f"scripted assistant ran out of replies after {len(self.calls) - 1} requests")
            self._next = 0
        reply = self.replies[self._next]
        self._next += 1
        return reply.replace("{seed}", str(seed))
