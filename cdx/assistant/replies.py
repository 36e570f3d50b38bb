"""Turn what an assistant wrote into prompts, or a yes/no verdict. Never raises on any input.

Accepted shapes, tried in order: a JSON object or list (also inside a code fence, after prose, or
with trailing commas); numbered, lettered or bulleted lists; `Prompt 3: ...` labels; bare lines
ending in '?'; lines that echo the examples' "(score 7.5)" prefix; lines wrapped in square brackets
(or opened by one never closed). Prose around the list ("Here are six prompts:") is ignored.
"""

from __future__ import annotations

import json
import logging
import re

log = logging.getLogger(__name__)

MAX_CHARS = 400
"""Longer items are prose, not prompts."""
_PROMPT_KEYS = ("prompt", "question", "request", "text", "input")
_FENCE = re.compile(r"```[\w+-]*[ \t]*\n?(.*?)```", re.S)
_ITEM = re.compile(
    r"^\s*(?:[-*\u2022+]|\(?\d{1,3}\s*[.):\]]|\d{1,3}\s+-|\(?[a-hA-H][.)]|#{1,4}\s*\d{1,3}[.:)]?)\s+(.+)$"
)
_LABEL = re.compile(
    r"^[\"']?(?:input[\s_-]*text|prompt|question|request|text|input|response)(?:[\s_-]*\d+)?[\"']?\s*[:=]\s*(.+)$", re.I
)
_VALUE = re.compile(r"^(?:\(\s*(?:divergence|score|value)?\s*[:=]?\s*[-+]?\d+(?:\.\d+)?\s*\)\s*[:,-]?|"
                    r"(?:divergence|score|value)\s*[:=]?\s*[-+]?\d+(?:\.\d+)?\s*[,;:-]?)\s*", re.I)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


def parse_prompts(reply: object, limit: int | None = None) -> list[str]:
    """The prompts in `reply`, cleaned and without repeats; [] when there are none."""
    try:
        found = _parse(reply) if isinstance(reply, str) else []
    except Exception:  # noqa: BLE001 - whatever an LLM writes must not stop the search
        log.exception("could not parse an assistant reply; treating it as empty")
        found = []
    return found if limit is None else found[:limit]


def _parse(reply: str) -> list[str]:
    bodies = [m.group(1) for m in _FENCE.finditer(reply)] + [reply]
    for body in bodies:
        items = _clean_all(_from_json(body))
        if items:
            return items
    return _clean_all(_from_lines(_FENCE.sub(lambda m: m.group(1), reply)))


def _from_json(text: str) -> list[str]:
    """Strings of the first JSON object or list in `text` that holds any."""
    dec = json.JSONDecoder()
    starts = [i for i, ch in enumerate(text) if ch in "{["][:64]
    for i in starts:
        for candidate in (text[i:], _TRAILING_COMMA.sub(r"\1", text[i:])):
            try:
                obj, _ = dec.raw_decode(candidate)
            except ValueError:
                continue
            items = _strings(obj)
            if items:
                return items
    return []


def _strings(obj: object, depth: int = 0) -> list[str]:
    if depth > 4:
        return []
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, list):
        return [s for x in obj for s in _strings(x, depth + 1)[:1 if isinstance(x, dict) else None]]
    if not isinstance(obj, dict):
        return []
    for v in obj.values():  # {"prompts": [...]}
        if isinstance(v, list) and any(isinstance(x, (str, dict)) for x in v):
            return _strings(v, depth + 1)
    keys = [k for k in obj if isinstance(obj[k], str)]
    for wanted in (_PROMPT_KEYS, ("response",)):
        chosen = [k for k in keys if any(w in k.lower() for w in wanted)]
        if chosen:
            return [obj[k] for k in sorted(chosen, key=_key_number)]
    return [obj[k] for k in keys]


def _key_number(key: str) -> int:
    m = re.search(r"\d+", key)
    return int(m.group()) if m else -1  # "prompt" before "prompt 1"; sorted() is stable


def _from_lines(text: str) -> list[str]:
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        inner = _unbracket(line)
        m = _ITEM.match(inner) or _LABEL.match(inner.lstrip("*_ "))
        if m:
            out.append(m.group(1))
        elif inner != line:  # "[What is your favourite colour?]": a bracketed line is one item
            out.append(inner)
        elif _VALUE.match(line):  # the example format echoed without a number: "(score 7) ..."
            out.append(line)
        elif line.rstrip("\"'*”").endswith("?"):
            out.append(line)
    return out


def _clean_all(items: list[str]) -> list[str]:
    out, seen = [], set()
    for raw in items:
        p = clean_prompt(raw)
        key = p.casefold()
        if p and key not in seen:
            seen.add(key)
            out.append(p)
    return out


def clean_prompt(text: str) -> str:
    """Strip list markers, labels, echoed values, markdown and quotes; '' if it is no prompt."""
    t = " ".join(str(text).split())
    for _ in range(3):  # markers can nest: '1. **Prompt 2:** "(divergence 3.1) ..."'
        before = t
        t = _unbracket(t.strip().strip("*_`").strip())
        m = _ITEM.match(t) or _LABEL.match(t)
        t = m.group(1) if m else t  # (.*) with re.S matched the whole text
        t = _VALUE.sub("", t)
        t = t.strip().rstrip(",").strip()
        if len(t) >= 2 and t[0] in "\"'\u201c" and t[-1] in "\"'\u201d":
            t = t[1:-1]
        if t == before:
            break
    t = t.strip()
    if len(t) < 3 or len(t) > MAX_CHARS or not re.search(r"[^\W\d_]", t) or t.endswith(":"):
        return ""
    return t


def _unbracket(line: str) -> str:
    """The line without wrapping square brackets: "[x]" -> "x"; also an opening bracket the model
    never closed ("[1. (score 9.0) Why ...?") or a closing one it never opened. Only square ones:
    "<|im_end|>" or "{...}" on a line of their own are no prompts."""
    opened, closed = line.startswith("["), line.endswith("]")
    if opened and closed and "]" not in line[1:-1]:
        return line[1:-1].strip()
    if opened and "]" not in line:
        return line[1:].strip()
    if closed and "[" not in line:
        return line[:-1].strip()
    return line


def parse_yes_no(reply: object, yes: list[str], no: list[str]) -> bool | None:
    """True/False by the first yes- or no-word in the reply (whole words, any case); None if neither."""
    if not isinstance(reply, str):
        return None
    words = [(w.lower(), True) for w in yes] + [(w.lower(), False) for w in no]
    first = None
    for word, verdict in words:
        m = re.search(rf"(?<!\w){re.escape(word)}(?!\w)", reply.lower())
        if m and (first is None or m.start() < first[0]):
            first = (m.start(), verdict)
    return None if first is None else first[1]
