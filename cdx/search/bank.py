"""The prompt bank and its checkpoint on disk.

Files in the run folder, written after every cycle in this order, each atomically:
`stats.jsonl` (one line appended per cycle), `bank.jsonl` (every entry), `embeddings.npy`
(row i = entry i) and last `state.json` (where the loop stands and how many bank entries and
stats lines belong to it). A run killed anywhere resumes from `state.json`: anything written after
it is cut off and the interrupted cycle runs again with the same seed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from cdx.io import JsonlWriter, RunDirError, atomic_save_npy, atomic_write_json, read_records, write_records
from cdx.io.records import CycleRecord

log = logging.getLogger(__name__)


@dataclass
class BankEntry:
    prompt: str
    divergence: float
    """Mean over the prompt's contrastive generations of the per-text metric."""
    sample_divergences: list[float]
    responses: list[str]
    """The contrastive generations' texts."""
    criterion: float | None
    """1 (yes), 0 (no) or None (not judged, or no clear answer)."""
    cycle: int
    """0 for seeds, else the successful cycle that added it."""
    repeat: int
    diversity: float = 0.0
    """Diversity score within its repeat's bank at the last checkpoint."""
    id: int = -1
    """Row in bank.jsonl and embeddings.npy."""


class Bank:
    """Entries plus their embeddings (N, D), row-aligned."""

    def __init__(self, entries: list[BankEntry] | None = None, embeddings: np.ndarray | None = None):
        self.entries = entries or []
        self.embeddings = embeddings if embeddings is not None else np.zeros((0, 0), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entries: list[BankEntry], embeddings: np.ndarray) -> None:
        if len(entries) != len(embeddings):
            raise ValueError(f"{len(entries)} entries but {len(embeddings)} embeddings")
        if not entries:
            return
        for e in entries:
            e.id = len(self.entries)
            self.entries.append(e)
        emb = np.asarray(embeddings, dtype=np.float32)
        self.embeddings = emb if self.embeddings.size == 0 else np.concatenate([self.embeddings, emb])

    def of_repeat(self, repeat: int) -> np.ndarray:
        return np.array([e.id for e in self.entries if e.repeat == repeat], dtype=int)


@dataclass
class SearchState:
    repeat: int = 0
    seeded: bool = False
    """The seeds of `repeat` are in the bank."""
    cycle: int = 0
    """Successful cycles of `repeat`."""
    attempt: int = 0
    """Cycles tried in `repeat`, failed ones included (seeds each cycle's randomness)."""
    failed: int = 0
    """Failed cycles of `repeat`."""
    n_entries: int = 0
    n_stats: int = 0
    done: bool = False


class BankStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.bank_path = self.folder / "bank.jsonl"
        self.emb_path = self.folder / "embeddings.npy"
        self.stats_path = self.folder / "stats.jsonl"
        self.state_path = self.folder / "state.json"

    def exists(self) -> bool:
        return any(p.exists() for p in (self.state_path, self.bank_path, self.stats_path))

    def append_stats(self, record: CycleRecord) -> None:
        with JsonlWriter(self.stats_path) as w:
            w.write([record.dump()])

    def stats(self) -> list[CycleRecord]:
        """The cycle records of stats.jsonl; a line that is not one (a damaged write) is left out, and
        `load()` cuts it from the file (its cycle runs again)."""
        return _cycle_records(read_records(self.stats_path) if self.stats_path.exists() else [], self.stats_path)

    def save(self, bank: Bank, state: SearchState) -> None:
        state.n_entries = len(bank)
        state.n_stats = len(self.stats())
        write_records(self.bank_path, (asdict(e) for e in bank.entries))
        atomic_save_npy(self.emb_path, bank.embeddings)
        atomic_write_json(self.state_path, asdict(state))

    def load(self) -> tuple[Bank, SearchState]:
        """The last checkpoint; what was written after it is cut back to it.

        Bank entries are found by their `id` (row), stats lines by (repeat, attempt), never by
        counting lines: a damaged line cannot shift one record into another's place.
        """
        if not self.state_path.exists():
            return Bank(), SearchState()
        state = SearchState(**json.loads(self.state_path.read_text(encoding="utf-8")))
        by_id = {r.get("id"): r for r in (read_records(self.bank_path) if self.bank_path.exists() else [])}
        emb = np.load(self.emb_path) if self.emb_path.exists() else np.zeros((0, 0), dtype=np.float32)
        lost = [i for i in range(state.n_entries) if i not in by_id]
        if lost or (state.n_entries and len(emb) < state.n_entries):
            raise RunDirError(
                f"{self.folder}: the checkpoint (state.json) holds {state.n_entries} bank entries, but bank.jsonl lacks "
                f"id(s) {lost[:10]} and embeddings.npy has {len(emb)} rows; the checkpoint is damaged and cannot be "
                f"resumed without losing prompts. Start a new output directory (seeds=bank can reuse this bank)")
        bank = Bank([BankEntry(**by_id[i]) for i in range(state.n_entries)],
                    emb[: state.n_entries] if state.n_entries else None)
        lines = read_records(self.stats_path) if self.stats_path.exists() else []
        kept = _checkpointed_stats(_cycle_records(lines, self.stats_path), state)
        if len(kept) != len(lines):  # a cycle logged after the checkpoint (it runs again), or a damaged line
            write_records(self.stats_path, (s.dump() for s in kept))
        return bank, state


def _cycle_records(lines: list[dict], path: Path) -> list[CycleRecord]:
    out = []
    for r in lines:
        try:
            out.append(CycleRecord.model_validate(r))
        except ValidationError as e:
            log.warning("%s: a line is not a cycle record (%s); it is left out", path, e.errors()[0]["msg"])
    return out


def _checkpointed_stats(stats: list[CycleRecord], state: SearchState) -> list[CycleRecord]:
    """Stats lines of cycles the checkpoint includes, each (repeat, attempt) once, in order."""
    seen, kept = set(), []
    for s in stats:
        key = (s.repeat, s.attempt)
        if key in seen or key > (state.repeat, state.attempt):
            continue
        seen.add(key)
        kept.append(s)
    return kept
