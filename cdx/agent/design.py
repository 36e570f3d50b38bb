"""Experiment design: which prompts should trigger a behaviour, which should not, and where they come from.

Sources, in the order they are used: an assistant's targeted prompts (when one is configured),
prompts of the run's own clusters and search bank assigned to the topic, and the built-in
templates (always there, so the agent works with no API key). Every prompt handed out is passed
to `on_prompt` with its source and the reason it was written, so the pipeline can log it.
With `asked_path`, the assistant's prompts are kept there by topic and read back by a resumed run,
which then designs its experiments from the same prompts without asking again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence, Set
from pathlib import Path

from cdx.agent.topics import PHRASING, TOPICS, TopicPrompt, draw, phrasing_prompts, template_prompts
from cdx.assistant.replies import parse_prompts
from cdx.io import RecordLog

log = logging.getLogger(__name__)

ASK = ("Write {n} different, realistic questions or requests that a user might send to a chat assistant about "
       "{topic}. Vary the wording and the sub-topic. Reply with a numbered list, one per line, nothing else.")


class PromptDesigner:
    """Prompts per topic from templates, the run's clusters/bank, and optionally an assistant."""

    def __init__(self, assistant=None, extra: dict[str, Sequence[str]] | None = None, n_assistant: int = 0,
                 seed: int = 0, on_prompt: Callable[[dict], None] | None = None,
                 on_assistant_call: Callable[[], None] | None = None, asked_path: str | Path | None = None):
        self.assistant, self.n_assistant, self.seed = assistant, int(n_assistant), int(seed)
        self.extra = {k: [TopicPrompt(t, k, "cluster") for t in v] for k, v in (extra or {}).items()}
        self.on_prompt, self.on_assistant_call = on_prompt, on_assistant_call
        self._asked: dict[str, list[TopicPrompt]] = {}
        self._asked_log = None
        if asked_path is not None:  # an assistant's reply is not reproducible: keep it, resume by topic
            self._asked_log = RecordLog(asked_path, key="topic")
            for topic, rec in self._asked_log.load().items():  # keyed by topic: str
                self._asked[str(topic)] = [TopicPrompt(t, str(topic), "assistant") for t in rec["prompts"]]

    def topics(self) -> list[str]:
        return sorted(set(TOPICS) | set(self.extra))

    def pool(self, topic: str) -> list[TopicPrompt]:
        """All prompts known for `topic` (assistant ones first, then cluster/bank, then templates).

        A phrasing condition (`phrasing:<slot>:<i>`) is every built-in topic's prompts of that template.
        """
        if topic.startswith(PHRASING):
            return phrasing_prompts(topic)
        out = list(self._ask(topic)) + list(self.extra.get(topic, []))
        if topic in TOPICS:
            out += template_prompts(topic)
        if not out:
            raise ValueError(f"no prompts for topic {topic!r}: it is neither built in ({sorted(TOPICS)}) nor a "
                             "cluster of this run, and no assistant is configured")
        return out

    def prompts(self, topic: str, n: int, reason: str, exclude: Set[str] = frozenset(), salt: int = 0) -> list[TopicPrompt]:
        """`n` prompts of `topic` not in `exclude` (seeded by `salt`), each logged with `reason`."""
        chosen = draw(self.pool(topic), n, self.seed * 1000 + salt, exclude)
        self._log(chosen, reason)
        return chosen

    def log_prompts(self, prompts: list[TopicPrompt], reason: str) -> None:
        self._log(prompts, reason)

    def _log(self, prompts: list[TopicPrompt], reason: str) -> None:
        if self.on_prompt is not None:
            for p in prompts:
                self.on_prompt({"prompt": p.text, "topic": p.topic, "source": p.source, "variant": p.variant,
                                "reason": reason})

    def _ask(self, topic: str) -> list[TopicPrompt]:
        """Targeted prompts from the assistant, asked once per topic (cached for the run)."""
        if self.assistant is None or self.n_assistant <= 0:
            return []
        if topic not in self._asked:
            messages = [{"role": "user", "content": ASK.format(n=self.n_assistant, topic=topic)}]
            try:
                reply = self.assistant.complete(messages, temperature=0.7, max_tokens=60 * self.n_assistant, seed=self.seed)
            except Exception as e:  # noqa: BLE001 - an assistant failure costs its prompts, not the experiment
                log.warning("assistant could not write prompts about %s (%s); using templates and clusters", topic, e)
                reply = ""
            if self.on_assistant_call is not None:
                self.on_assistant_call()
            self._asked[topic] = [TopicPrompt(t, topic, "assistant") for t in parse_prompts(reply, self.n_assistant)]
            if self._asked_log is not None:
                with self._asked_log.writer() as w:
                    w.write([{"topic": topic, "prompts": [p.text for p in self._asked[topic]]}])
        return self._asked[topic]
