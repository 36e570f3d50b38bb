"""The tracker interface every task logs through; `NullTracker` (logger=none) costs nothing."""

from __future__ import annotations

from typing import Protocol


class Tracker(Protocol):
    def start(self, config: dict, meta: dict) -> None:
        """Open a run: `config` is the resolved Hydra config, `meta` the task, choices, overrides, commit."""

    def log_summary(self, summary: dict) -> None:
        """Final metrics of the run."""

    def log_records(self, records: list[dict], kind: str) -> None:
        """Per-text records (kind: generations, scores or bank)."""

    def log_step(self, values: dict, step: int) -> None:
        """A time-series point (e.g. one search cycle)."""

    def log_files(self, paths: list[str], name: str) -> None:
        """Output files of the run, as one artifact."""

    def finish(self, failed: bool = False) -> None:
        """Close the run; always called, also after an error."""


class NullTracker:
    """Tracks nothing."""

    def start(self, config: dict, meta: dict) -> None:
        pass

    def log_summary(self, summary: dict) -> None:
        pass

    def log_records(self, records: list[dict], kind: str) -> None:
        pass

    def log_step(self, values: dict, step: int) -> None:
        pass

    def log_files(self, paths: list[str], name: str) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass


