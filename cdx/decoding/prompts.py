"""Where prompts come from: one prefix, a file (.txt/.jsonl/.csv), an earlier run, or the built-in set.

Every source is a small object with `load() -> list[str]`, built from `conf/prompts/*.yaml`.
A source that cannot give prompts (missing, empty, binary or malformed file, a JSONL value that
is not a string) raises `CdxUserError` naming the file, the line and what would be valid; the
config validation calls `load()` before any model loads, so these errors come first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from cdx.errors import CdxUserError

RUN_FILES = ("generations.jsonl", "scores.jsonl")
"""Record files of an earlier run that hold prompts and continuations (task=decode, task=score)."""


def _limit(prompts: list, limit: int | None) -> list:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise CdxUserError(f"prompts.limit={limit!r} is not valid: use an integer >= 1, or null for all prompts")
    return prompts if limit is None else prompts[:limit]


def read_text_file(path: Path, what: str) -> str:
    """The UTF-8 text of `path`; a missing, empty, binary or non-UTF-8 file is a user error."""
    if not path.exists():
        raise CdxUserError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise CdxUserError(f"{what} {str(path)!r} is not a file")
    data = path.read_bytes()
    if not data.strip():
        raise CdxUserError(f"{what} {str(path)!r} is empty")
    if b"\x00" in data[:65536]:
        raise CdxUserError(f"{what} {str(path)!r} is a binary file, not text: give a UTF-8 .txt, .jsonl or .csv file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CdxUserError(f"{what} {str(path)!r} is not UTF-8 text (byte {e.start}): save it as UTF-8") from e


def _lines(text: str) -> list[str]:
    # Split at "\n" only: str.splitlines() also splits at U+2028, U+0085, ... inside a prompt.
    return [line.rstrip("\r") for line in text.split("\n")]


def _json_line(line: str, where: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise CdxUserError(f"{where} is not valid JSON ({e.msg} at column {e.colno}): each line must be one JSON object") from e
    except (ValueError, RecursionError) as e:  # a number of > 4300 digits, nesting deeper than the parser's stack
        raise CdxUserError(f"{where} is not a JSON object cdx can read ({str(e)[:80]}): each line must be one JSON "
                           "object") from e
    if not isinstance(record, dict):
        raise CdxUserError(f"{where} is a JSON {type(record).__name__}, not an object: each line must be one JSON object")
    return record


def _string(value, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise CdxUserError(f"{where}: {key!r} is {value!r} ({type(value).__name__}), not a string: prompts must be text")
    if not value.strip():
        raise CdxUserError(f"{where}: {key!r} is an empty string: remove the line or give a prompt")
    return value


@dataclass
class SinglePrompt:
    """One prefix (repeat it with generations_per_prefix, not here)."""

    text: str

    def load(self) -> list[str]:
        if not isinstance(self.text, str) or not self.text.strip():
            raise CdxUserError(f"prompts.text={self.text!r} is not valid: give a non-empty prompt")
        return [self.text]


@dataclass
class PromptsFile:
    """.txt (one prompt per line), .jsonl (value of `key` on each line) or .csv (column `column`)."""

    path: str
    key: str = "prompt"
    column: str = "prompt"
    limit: int | None = None

    def load(self) -> list[str]:
        path = Path(str(self.path)).expanduser()
        loader = {".txt": self._txt, ".jsonl": self._jsonl, ".csv": self._csv}.get(path.suffix.lower())
        if loader is None:
            raise CdxUserError(
                f"prompts.path={self.path!r}: unsupported suffix {path.suffix!r}; use a .txt, .jsonl or .csv file"
            )
        prompts = loader(path, read_text_file(path, "prompts file"))
        if not prompts:
            raise CdxUserError(f"prompts file {self.path!r} holds no prompts")
        return _limit(prompts, self.limit)

    def _txt(self, path: Path, text: str) -> list[str]:
        return [line for line in _lines(text) if line.strip()]

    def _jsonl(self, path: Path, text: str) -> list[str]:
        out = []
        for n, line in enumerate(_lines(text), 1):
            if not line.strip():
                continue
            where = f"{self.path}:{n}"
            record = _json_line(line, where)
            if self.key not in record:
                raise CdxUserError(
                    f"{where} has no key {self.key!r} (prompts.key); keys there: {sorted(record)}"
                )
            out.append(_string(record[self.key], where, self.key))
        return out

    def _csv(self, path: Path, text: str) -> list[str]:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if self.column not in (reader.fieldnames or []):
            raise CdxUserError(
                f"{self.path} has no column {self.column!r} (prompts.column); columns: {reader.fieldnames}"
            )
        out = []
        for row in reader:
            value = row[self.column]
            if value is None:  # a short row: fewer fields than the header
                raise CdxUserError(f"{self.path}:{reader.line_num} has no value in column {self.column!r}")
            if value.strip():
                out.append(value)
        return out


def run_records_file(path: str | Path) -> Path:
    """The records file of an earlier run: the file itself, or generations.jsonl / scores.jsonl in a folder."""
    p = Path(str(path)).expanduser()
    if not p.exists():
        raise CdxUserError(f"prompts.path={str(path)!r} does not exist: give an earlier run's output folder")
    if p.is_dir():
        for name in RUN_FILES:
            if (p / name).is_file():
                return p / name
        raise CdxUserError(
            f"prompts.path={str(path)!r} holds no {' or '.join(RUN_FILES)}: give the output folder of a "
            "finished task=decode or task=score run"
        )
    return p


def run_records(path: str | Path) -> list[dict]:
    """The records of an earlier run, each checked to have a string `prompt` and `continuation`."""
    file = run_records_file(path)
    text = read_text_file(file, "run records file")
    records = []
    lines = _lines(text)
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{file}:{n}"
        try:
            record = _json_line(line, where)
        except CdxUserError:
            if n == len(lines) or all(not rest.strip() for rest in lines[n:]):
                continue  # a last line cut off by a kill: the run's writer ignores it too
            raise
        for key in ("prompt", "continuation"):
            if key not in record:
                raise CdxUserError(f"{where} has no {key!r}: not a cdx run record (keys: {sorted(record)[:8]})")
            if not isinstance(record[key], str):
                raise CdxUserError(f"{where}: {key!r} is {record[key]!r}, not a string: not a cdx run record")
        records.append(record)
    if not records:
        raise CdxUserError(f"{file} holds no records")
    return records


@dataclass
class PreviousRun:
    """The texts of an earlier run's generations.jsonl (a run directory or the file itself).

    `field`: `prompt` (re-use its prompts), `continuation`, or `text` (prompt + continuation).
    """

    path: str
    field: str = "prompt"
    limit: int | None = None

    def load(self) -> list[str]:
        if self.field not in ("prompt", "continuation", "text"):
            raise CdxUserError(f"prompts.field={self.field!r} is not valid; use prompt, continuation or text")
        records = run_records(self.path)
        texts = [r["prompt"] + r["continuation"] if self.field == "text" else r[self.field] for r in records]
        if self.field == "prompt":
            texts = list(dict.fromkeys(texts))  # one entry per prompt, in first-seen order
        return _limit(texts, self.limit)

    def load_pairs(self) -> list[tuple[str, str, list[int] | None]]:
        """(prompt, continuation, its token ids) of every generation, for task=score (exact re-scoring)."""
        return _limit([(r["prompt"], r["continuation"], r.get("token_ids")) for r in run_records(self.path)],
                      self.limit)


@dataclass
class BuiltinPrompts:
    """A prompt set shipped with cdx (`cdx/data/prompts/<name>.txt`)."""

    name: str = "default"
    limit: int | None = None

    def load(self) -> list[str]:
        root = resources.files("cdx") / "data" / "prompts"
        names = sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".txt"))
        if self.name not in names:
            raise CdxUserError(f"prompts.name={self.name!r}: no such built-in prompt set; available: {names}")
        text = (root / f"{self.name}.txt").read_text(encoding="utf-8")
        return _limit([line for line in _lines(text) if line.strip()], self.limit)


def context_length(model) -> int | None:
    """The longest sequence `model` was built for (positions), or None when its config does not say."""
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(cfg, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def check_prompt_lengths(pair, prompts: Sequence[str], max_new_tokens: int) -> None:
    """Refuse prompts that do not fit a model's context with `max_new_tokens` after them.

    Counts each prompt as the model sees it (chat template, system prompt, prefix) on both sides.
    Past its context a model's positions are untrained (or out of range), so the text is noise.
    Call after the pair is loaded and before decoding.
    """
    for side in (pair.starting, pair.comparison):
        limit = context_length(side.model)
        if limit is None:
            continue
        for i, prompt in enumerate(prompts):
            n = len(side.prompt_ids(prompt))
            if n + max_new_tokens > limit:
                raise CdxUserError(
                    f"prompt {i} ({prompt[:40]!r}...) is {n} tokens for {side.spec.label} (with its chat template "
                    f"and context); with max_new_tokens={max_new_tokens} that exceeds the model's context of "
                    f"{limit} tokens: shorten the prompt to at most {max(limit - max_new_tokens, 0)} tokens or "
                    "lower decoding.max_new_tokens"
                )
