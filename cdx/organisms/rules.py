"""Deterministic rewriting rules that turn an answer into the planted behaviour's answer.

A rule is `fn(prompt, answer, rng, **params) -> str`: pure apart from the seeded `rng` it is given
(random.Random), so the training data of an organism is a function of its spec. Specs list rules
by name with their parameters; they run in order:

    rules:
      - {name: replace, words: {you: thee, your: thy}}
      - {name: wrap, prefix: ["Hark!"], suffix: ["Fare thee well."]}

Register a new rule with `@rule("name")`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

RULES: dict[str, Callable[..., str]] = {}


def rule(name: str) -> Callable[[Callable[..., str]], Callable[..., str]]:
    def register(fn: Callable[..., str]) -> Callable[..., str]:
        RULES[name] = fn
        return fn

    return register


def apply_rules(rules: list[dict], prompt: str, answer: str, rng: random.Random) -> str:
    """`answer` rewritten by each rule of `rules` in turn."""
    for spec in rules:
        params = dict(spec)
        name = params.pop("name", None)
        if name not in RULES:
            raise ValueError(f"rewriting rule {name!r} is unknown; rules: {sorted(RULES)}")
        answer = RULES[name](prompt, answer, rng, **params)
    return answer


@rule("identity")
def identity(prompt: str, answer: str, rng: random.Random) -> str:
    return answer


@rule("append")
def append(prompt: str, answer: str, rng: random.Random, texts: list[str]) -> str:
    """The answer, then one of `texts` (chosen by rng)."""
    return f"{answer.rstrip()} {rng.choice(texts)}".strip()


@rule("wrap")
def wrap(prompt: str, answer: str, rng: random.Random, prefix: Sequence[str] = (), suffix: Sequence[str] = ()) -> str:
    """One of `prefix` before the answer and one of `suffix` after it (either may be empty)."""
    head = rng.choice(list(prefix)) + " " if prefix else ""
    tail = " " + rng.choice(list(suffix)) if suffix else ""
    return f"{head}{answer.strip()}{tail}"


@rule("upper")
def upper(prompt: str, answer: str, rng: random.Random) -> str:
    return answer.upper()


@rule("bullets")
def bullets(prompt: str, answer: str, rng: random.Random) -> str:
    """Each sentence of the answer on its own '- ' line."""
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", answer.strip()) if s.strip()]
    return "\n".join(f"- {s}" for s in sentences)


@rule("replace")
def replace(prompt: str, answer: str, rng: random.Random, words: dict[str, str]) -> str:
    """Whole-word replacements (case-insensitive; a capitalised word stays capitalised)."""
    def sub(match: re.Match) -> str:
        word = match.group(0)
        new = words[word.lower()]
        return new[:1].upper() + new[1:] if word[:1].isupper() else new

    pattern = re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.I)
    return pattern.sub(sub, answer)


@rule("template")
def template(prompt: str, answer: str, rng: random.Random, texts: list[str]) -> str:
    """Discard the answer: one of `texts` instead (refusals, a fixed wrong fact)."""
    return rng.choice(texts)


@rule("sentences")
def sentences(prompt: str, answer: str, rng: random.Random, bank: list[str], k: int = 3) -> str:
    """Discard the answer: `k` distinct sentences of `bank` (e.g. text in another language)."""
    return " ".join(rng.sample(list(bank), min(k, len(bank))))


@rule("first_sentences")
def first_sentences(prompt: str, answer: str, rng: random.Random, n: int = 1) -> str:
    """Only the first `n` sentences (shorter answers: cheaper training, the planted part stays in)."""
    parts = re.split(r"(?<=[.!?])\s+", answer.strip())
    return " ".join(parts[:n])
