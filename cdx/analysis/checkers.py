"""Checkers: does a text show the behaviour a hypothesis states? `check(text) -> bool`.

A checker is stored as a plain JSON dict in findings.jsonl and rebuilt by `build_checker`, so a
finding can be re-tested later on any texts (e.g. by the organism benchmark or the knowledge base):

    {"type": "string", "value": "arr", "case": false, "word": true}
    {"type": "regex", "pattern": "\\b(arr+|ahoy)\\b", "flags": "i"}
    {"type": "feature", "name": "refusal"}
    {"type": "any", "checkers": [{...}, {...}]}
    {"type": "judge", "question": "Does the text talk like a pirate?"}   (needs an assistant)
    {"type": "ending", "max_tokens": 32}   (the answer ended by itself: needs the sample record)

`check` takes a text or a sample record (anything with `.text`); an ending checker needs the record
(its `finish_reason` and `n_tokens`), so the analysis passes records everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cdx.analysis.features import FEATURES

CHECKER_TYPES = ("string", "regex", "feature", "any", "judge", "ending")

ENDED = ("eos", "stop")
"""Finish reasons of an answer that ended by itself (end of sequence, a stop string), not at the budget."""


def text_of(x) -> str:
    """The text of a text or a sample record."""
    return x if isinstance(x, str) else x.text


@runtime_checkable
class Checker(Protocol):
    def check(self, text) -> bool:
        """True when `text` (a text or a sample record) shows the behaviour."""
        ...

    def to_dict(self) -> dict:
        """The JSON dict `build_checker` rebuilds this checker from."""
        ...


class StringChecker:
    """A literal substring; `word=true` requires word boundaries; `case=false` ignores case."""

    def __init__(self, value: str, case: bool = False, word: bool = True):
        if not value:
            raise ValueError("string checker needs a non-empty value")
        self.value, self.case, self.word = value, case, word
        body = re.escape(value)
        if word:
            body = rf"(?<!\w){body}(?!\w)"
        self._re = re.compile(body, 0 if case else re.I)

    def check(self, text) -> bool:
        return bool(self._re.search(text_of(text)))

    def to_dict(self) -> dict:
        return {"type": "string", "value": self.value, "case": self.case, "word": self.word}


class RegexChecker:
    """A regular expression (Python syntax); `flags` is a string of i, m, s."""

    def __init__(self, pattern: str, flags: str = "i"):
        bad = set(flags) - set("ims")
        if bad:
            raise ValueError(f"regex checker flags={flags!r}: unknown flag(s) {sorted(bad)}; use any of i, m, s")
        value = 0
        for f in flags:
            value |= {"i": re.I, "m": re.M, "s": re.S}[f]
        try:
            self._re = re.compile(pattern, value)
        except re.error as e:
            raise ValueError(f"regex checker pattern {pattern!r} does not compile: {e}") from e
        self.pattern, self.flags = pattern, flags

    def check(self, text) -> bool:
        return bool(self._re.search(text_of(text)))

    def to_dict(self) -> dict:
        return {"type": "regex", "pattern": self.pattern, "flags": self.flags}


class FeatureChecker:
    """A registered behavioural feature (`cdx.analysis.features.FEATURES`)."""

    def __init__(self, name: str):
        if name not in FEATURES:
            raise ValueError(f"feature checker name={name!r} is unknown; registered features: {sorted(FEATURES)}")
        self.name, self._fn = name, FEATURES[name]

    def check(self, text) -> bool:
        return bool(self._fn(text_of(text)))

    def to_dict(self) -> dict:
        return {"type": "feature", "name": self.name}


class AnyChecker:
    """True when any of its checkers is (e.g. several words of one theme)."""

    def __init__(self, checkers: list[Checker]):
        if not checkers:
            raise ValueError("an 'any' checker needs at least one checker")
        self.checkers = checkers

    def check(self, text) -> bool:
        return any(c.check(text) for c in self.checkers)

    def to_dict(self) -> dict:
        return {"type": "any", "checkers": [c.to_dict() for c in self.checkers]}


class EndingChecker:
    """The answer ended by itself (end of sequence or a stop string, `ENDED`), within `max_tokens`
    tokens when given (None: anywhere within the budget). A property of the sample, not of its words:
    it needs the sample record and refuses a bare text rather than guess."""

    def __init__(self, max_tokens: int | None = None):
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
            raise ValueError(f"ending checker max_tokens={max_tokens!r} must be a positive integer or null")
        self.max_tokens = max_tokens

    def check(self, text) -> bool:
        if isinstance(text, str):
            raise TypeError("an ending checker needs the sample record (its finish_reason and n_tokens), not its "
                            "text: pass the SampleRecord")
        return text.finish_reason in ENDED and (self.max_tokens is None or text.n_tokens <= self.max_tokens)

    def to_dict(self) -> dict:
        return {"type": "ending", "max_tokens": self.max_tokens}


def ending_statement(max_tokens: int | None) -> str:
    """What an ending checker looks for, in words."""
    return "ends its answers by itself" + (f" within {max_tokens} tokens" if max_tokens is not None else
                                           " before the budget")


def needs_record(spec: dict) -> bool:
    """Whether a checker spec holds an ending checker (which texts alone cannot check)."""
    return spec.get("type") == "ending" or any(needs_record(c) for c in spec.get("checkers", []))


def build_checker(spec: dict, judge=None) -> Checker:
    """The checker a JSON dict describes; `judge` (a `cdx.analysis.judge.Judge`) is needed for type judge."""
    if not isinstance(spec, dict) or "type" not in spec:
        raise ValueError(f"a checker spec must be a dict with a 'type' ({', '.join(CHECKER_TYPES)}); got {spec!r}")
    kind = spec["type"]
    args = {k: v for k, v in spec.items() if k != "type"}
    if kind == "string":
        return StringChecker(**args)
    if kind == "regex":
        return RegexChecker(**args)
    if kind == "feature":
        return FeatureChecker(**args)
    if kind == "any":
        return AnyChecker([build_checker(s, judge) for s in args.get("checkers", [])])
    if kind == "ending":
        return EndingChecker(**args)
    if kind == "judge":
        if judge is None:
            raise ValueError(f"checker {spec!r} needs an assistant as judge: configure one (analysis with "
                             "assistant=openai|local and analysis.validate.judge=true) or pass judge=")
        return judge.checker(args["question"])
    raise ValueError(f"checker type {kind!r} is not valid; use one of {CHECKER_TYPES}")


_LOOKS_PAST_MATCH = re.compile(r"\(\?=|\(\?!|\$|\\Z")
"""Regex syntax whose verdict can depend on text beyond one character after the match: a
lookahead, or an end anchor. Such a pattern is settled only when the text ends."""

REPLACEMENT = "\ufffd"
"""What a token holding part of a UTF-8 character decodes to alone: not yet the real character."""


def settled_step(checker: Checker, token_strs: Sequence[str], text=None) -> int | None:
    """How many tokens a text needed before `checker` fires on it whatever follows; None if it never fires.

    A string or regex checker is settled by a match that has a whole character after it (word
    boundaries look one character ahead): every continuation keeps that match. Scanning the
    prefixes may find the settling a little late (finditer skips overlapping matches), never
    early, and later is still a valid stopping time (cdx.metrics.importance, "Stopped weights").
    Other checkers (features, judges, regex with lookaheads or end anchors) are settled only by
    the whole text. An `any` checker settles when its first member does. `token_strs` are the
    tokens' texts, in order; `text` (default: their concatenation) gives the verdict, as a sample
    record's text, which leaves out special tokens such as an end-of-text token the strings name; pass
    the record itself for checkers that need it (an ending is settled by the last token).
    """
    x = "".join(token_strs) if text is None else text
    if not checker.check(x):
        return None
    return _settled(checker, token_strs, x)


def _settled(checker: Checker, token_strs: Sequence[str], x) -> int:
    n = len(token_strs)
    if isinstance(checker, AnyChecker):
        return min(_settled(c, token_strs, x) if c.check(x) else n for c in checker.checkers)
    pattern = getattr(checker, "_re", None)
    if not isinstance(checker, (StringChecker, RegexChecker)) or pattern is None or (
            isinstance(checker, RegexChecker) and _LOOKS_PAST_MATCH.search(checker.pattern)):
        return n
    prefix = ""
    for t, s in enumerate(token_strs, start=1):
        prefix += s
        if any(m.end() < len(prefix) and prefix[m.end()] != REPLACEMENT for m in pattern.finditer(prefix)):
            return t
    return n
