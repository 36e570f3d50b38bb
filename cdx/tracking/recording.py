"""A `Tracker` that records every call in memory: the fake for unit tests of anything that logs.

    tracker = RecordingTracker()
    with tracked(cfg, "decode") ...           # or pass it where a tracker is expected
    assert tracker.summaries[0]["n_tokens"] > 0

Built by Hydra too (`logger._target_=cdx.tracking.recording.RecordingTracker`); `RecordingTracker.last`
is then the instance the task used.
"""

from __future__ import annotations

import copy
from typing import ClassVar


class RecordingTracker:
    """Keeps deep copies of what it was given, in call order; `calls` names every call."""

    last: ClassVar[RecordingTracker | None] = None

    def __init__(self) -> None:
        self.config: dict | None = None
        """The config given to start()."""
        self.meta: dict | None = None
        """The run metadata given to start() (task, choices, overrides, git commit, sweep_dir, job_num)."""
        self.summaries: list[dict] = []
        self.records: dict[str, list[list[dict]]] = {}
        """kind -> one list of records per log_records call."""
        self.steps: list[tuple[int, dict]] = []
        self.files: list[tuple[str, list[str]]] = []
        self.finished: bool | None = None
        """None while open; else the `failed` flag finish() got."""
        self.calls: list[str] = []
        RecordingTracker.last = self

    def start(self, config: dict, meta: dict) -> None:
        self._call("start")
        self.config, self.meta = copy.deepcopy(config), copy.deepcopy(meta)

    def log_summary(self, summary: dict) -> None:
        self._call("log_summary")
        self.summaries.append(copy.deepcopy(summary))

    def log_records(self, records: list[dict], kind: str) -> None:
        self._call("log_records")
        self.records.setdefault(kind, []).append(copy.deepcopy(list(records)))

    def log_step(self, values: dict, step: int) -> None:
        self._call("log_step")
        self.steps.append((step, copy.deepcopy(values)))

    def log_files(self, paths: list[str], name: str) -> None:
        self._call("log_files")
        self.files.append((name, list(paths)))

    def finish(self, failed: bool = False) -> None:
        self._call("finish")
        self.finished = failed

    def _call(self, name: str) -> None:
        # The same contract the real tracker relies on: start first, nothing after finish.
        if name != "start" and "start" not in self.calls:
            raise RuntimeError(f"{name}() before start()")
        if "finish" in self.calls:
            raise RuntimeError(f"{name}() after finish()")
        self.calls.append(name)
