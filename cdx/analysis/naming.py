"""Behaviours named by the assistant (issue 18): a sentence written from the behaviour's phrase and
its texts, beside the statement cdx templates without an LLM.

The assistant is blinded: it sees texts of the model that shows the behaviour, the characteristic
phrase and, for a scoped behaviour, the topics where it lives, but not which model wrote the texts,
the direction of the change or any rate. It completes "The model ..." with what the texts have in
common; cdx adds the model and the direction ("the comparison model <it> more often"). The
statistics stay those of the behaviour's checker: a name never changes what was tested, only how
it reads (`Behaviour.assistant_statement`; `statement` keeps the LLM-free one).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence

from cdx.analysis.behaviours import Behaviour

log = logging.getLogger(__name__)

SYSTEM = ("You name a behaviour of a language model from texts that show it. Reply with one line: how the "
          "sentence 'The model ...' continues, in at most 20 words, stating the behaviour concretely (quote a "
          "phrase it writes when that is the behaviour). No preamble, no explanation.")
MAX_WORDS = 25
"""A longer reply is not a name (the model explained instead of naming): it is dropped."""


def naming_messages(b: Behaviour, n_examples: int = 5, seed: int = 0) -> list[dict[str, str]]:
    """The request for one behaviour: up to `n_examples` of its evidence texts (a seeded choice, in no
    model's name), its phrase and its topics; nothing about which model wrote them or how often."""
    texts = [e.text for e in b.evidence]
    shown = random.Random(seed).sample(texts, min(n_examples, len(texts)))
    lines = ["These texts were written by a language model, each in answer to a different prompt. They share a "
             "behaviour.", ""]
    lines += [f"Text {i + 1}: {' '.join(t.split())[:600]}" for i, t in enumerate(shown)]
    if b.phrase:
        lines += ["", f'A phrase characteristic of the behaviour: "{b.phrase}"']
    if b.scope.clusters:
        lines += [f"It shows on prompts about: {'; '.join(b.scope.labels)}"]
    lines += ["", "Complete: The model ..."]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def parse_name(reply: str) -> str | None:
    """The reply's first line as a verb phrase ("ends its answers by ..."): "The model" and quotes,
    bullets and a final full stop taken off; None when empty or longer than `MAX_WORDS` words."""
    line = next((x.strip() for x in reply.splitlines() if x.strip()), "")
    line = re.sub(r"^(?:[-*>\d.)\s]+)", "", line).strip().strip('"\u201c\u201d').strip()
    line = re.sub(r"^(?:complete:\s*)?(?:the model\s*(?:\.\.\.|\u2026)?\s*)", "", line, flags=re.I).strip()
    line = line.rstrip(".").strip()
    if not line or len(line.split()) > MAX_WORDS:
        return None
    return line


def named_statement(b: Behaviour, name: str) -> str:
    """The assistant's verb phrase with the model and direction cdx knows (scope as the template states it)."""
    where = f"on prompts about {'; '.join(b.scope.labels)}, " if b.scope.clusters else ""
    more = "more often" if b.side == "gained" else "less often"
    return f"{where}the comparison model {name} {more}"


def name_behaviours(behaviours: Sequence[Behaviour], assistant, seed: int = 0, n_examples: int = 5) -> list[Behaviour]:
    """Each behaviour that counts (validated, not a word-frequency shift) with `assistant_statement` set
    from the assistant's reply; the others, and any whose request fails or whose reply holds no
    name, unchanged (a failure of the assistant never loses a behaviour)."""
    out = []
    for i, b in enumerate(behaviours):
        if not b.is_behaviour:
            out.append(b)
            continue
        try:
            reply = assistant.complete(naming_messages(b, n_examples, seed + i), temperature=0.0, max_tokens=60,
                                       seed=seed)
        except Exception as e:  # noqa: BLE001 - the templated statement stands
            log.warning("naming behaviour %s skipped: %s", b.id, e)
            out.append(b)
            continue
        name = parse_name(reply)
        out.append(b if name is None else b.model_copy(update={"assistant_statement": named_statement(b, name)}))
    return out
