"""Where prompts come from: one prefix, a file (.txt/.jsonl/.csv), an earlier run, or the built-in set.

Every source is a small object with `load() -> list[str]`, built from `conf/prompts/*.yaml`.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


def _limit(prompts: list[str], limit: int | None) -> list[str]:
    if limit is not None and limit < 1:
        raise ValueError(f"limit={limit} must be >= 1 (or null for all prompts)")
    return prompts if limit is None else prompts[:limit]


@dataclass
class SinglePrompt:
    """One prefix (repeat it with generations_per_prefix, not here)."""

    text: str

    def load(self) -> list[str]:
        return [self.text]


@dataclass
class PromptsFile:
    """.txt (one prompt per line), .jsonl (value of `key` on each line) or .csv (column `column`)."""

    path: str
    key: str = "prompt"
    column: str = "prompt"
    limit: int | None = None

    def load(self) -> list[str]:
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"prompts file {self.path!r} does not exist")
        loader = {".txt": self._txt, ".jsonl": self._jsonl, ".csv": self._csv}.get(path.suffix.lower())
        if loader is None:
            raise ValueError(f"prompts file {self.path!r}: unsupported suffix {path.suffix!r}; use .txt, .jsonl or .csv")
        prompts = loader(path)
        if not prompts:
            raise ValueError(f"prompts file {self.path!r} holds no prompts")
        return _limit(prompts, self.limit)

    def _txt(self, path: Path) -> list[str]:
        return [line.rstrip("\n") for line in path.read_text().splitlines() if line.strip()]

    def _jsonl(self, path: Path) -> list[str]:
        out = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            record = json.loads(line)
            if self.key not in record:
                raise KeyError(f"{self.path}:{n} has no key {self.key!r}; keys there: {sorted(record)}")
            out.append(str(record[self.key]))
        return out

    def _csv(self, path: Path) -> list[str]:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            if self.column not in (reader.fieldnames or []):
                raise KeyError(f"{self.path} has no column {self.column!r}; columns: {reader.fieldnames}")
            return [row[self.column] for row in reader if row[self.column].strip()]


@dataclass
class PreviousRun:
    """The texts of an earlier run's generations.jsonl (a run directory or the file itself).

    `field`: `prompt` (re-use its prompts), `continuation`, or `text` (prompt + continuation).
    """

    path: str
    field: str = "prompt"
    limit: int | None = None

    def load(self) -> list[str]:
        from cdx.io import read_records

        path = Path(self.path).expanduser()
        path = path / "generations.jsonl" if path.is_dir() else path
        if self.field not in ("prompt", "continuation", "text"):
            raise ValueError(f"field={self.field!r} is not valid; use prompt, continuation or text")
        records = read_records(path)
        if not records:
            raise ValueError(f"{path} holds no generations")
        texts = [r["prompt"] + r["continuation"] if self.field == "text" else r[self.field] for r in records]
        if self.field == "prompt":
            texts = list(dict.fromkeys(texts))  # one entry per prompt, in first-seen order
        return _limit(texts, self.limit)

    def load_pairs(self) -> list[tuple[str, str, list[int] | None]]:
        """(prompt, continuation, its token ids) of every generation, for task=score (exact re-scoring)."""
        path = Path(self.path).expanduser()
        path = path / "generations.jsonl" if path.is_dir() else path
        from cdx.io import read_records

        return _limit([(r["prompt"], r["continuation"], r.get("token_ids")) for r in read_records(path)], self.limit)


@dataclass
class BuiltinPrompts:
    """A prompt set shipped with cdx (`cdx/data/prompts/<name>.txt`)."""

    name: str = "default"
    limit: int | None = None

    def load(self) -> list[str]:
        root = resources.files("cdx") / "data" / "prompts"
        names = sorted(p.name[:-4] for p in root.iterdir() if p.name.endswith(".txt"))
        if self.name not in names:
            raise ValueError(f"no built-in prompt set {self.name!r}; available: {names}")
        text = (root / f"{self.name}.txt").read_text()
        return _limit([line for line in text.splitlines() if line.strip()], self.limit)
