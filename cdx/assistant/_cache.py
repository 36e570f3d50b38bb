"""An on-disk reply cache keyed by the full request, so reruns and tests are deterministic and cheap."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

from cdx.assistant._base import Assistant, Message, check_messages
from cdx.io import atomic_write_json

log = logging.getLogger(__name__)


def default_assistant_cache() -> Path:
    from cdx.models.gguf_cache import default_cache_dir

    return default_cache_dir() / "assistant"


class CachedAssistant:
    """Wraps an assistant; a request seen before is answered from `cache_dir` without calling it.

    The key hashes the inner assistant's `cache_id` (backend, model, sampling settings) and the
    whole request: messages, temperature, max_tokens and seed. One JSON file per request, written
    atomically; errors are never cached. `enabled=false` passes every request through.
    """

    def __init__(self, inner: Assistant, cache_dir: str | Path | None = None, enabled: bool = True):
        self.inner, self.enabled = inner, enabled
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_assistant_cache()
        self.hits = self.misses = 0

    @property
    def cache_id(self) -> str:
        return self.inner.cache_id

    def request(self, messages: Sequence[Message], temperature: float, max_tokens: int, seed: int | None) -> dict:
        return {"assistant": self.inner.cache_id, "messages": check_messages(messages),
                "temperature": float(temperature), "max_tokens": int(max_tokens), "seed": seed}

    def path(self, request: dict) -> Path:
        key = hashlib.sha256(json.dumps(request, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        return self.cache_dir / key[:2] / f"{key}.json"

    def complete(
        self, messages: Sequence[Message], temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        if not self.enabled:
            return self.inner.complete(messages, temperature=temperature, max_tokens=max_tokens, seed=seed)
        req = self.request(messages, temperature, max_tokens, seed)
        path = self.path(req)
        reply = _read_reply(path)
        if reply is not None:
            self.hits += 1
            return reply
        self.misses += 1
        reply = self.inner.complete(messages, temperature=temperature, max_tokens=max_tokens, seed=seed)
        atomic_write_json(path, {"request": req, "reply": reply})
        return reply


def _read_reply(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        reply = json.loads(path.read_text(encoding="utf-8"))["reply"]
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable cache entry %s", path)
        return None
    return reply if isinstance(reply, str) else None
