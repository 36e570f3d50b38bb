"""Progress as structured events: the tasks' progress bars also append where they stand to a JSONL
file, so a watcher (the app's jobs panel) reads typed events instead of scraping terminal output.

`bar(...)` is `tqdm` (same arguments, same bar on stderr). When `$CDX_PROGRESS_FILE` names a file
(the app sets it for the jobs it starts), every bar also appends a `ProgressEvent` there: when it
opens, at most once a second while it moves, and when it closes. Without the variable nothing is
written, so a run's folder and outputs are the same as before.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pydantic import BaseModel
from tqdm import tqdm

ENV = "CDX_PROGRESS_FILE"
EVERY_S = 1.0
"""Fewest seconds between two events of one bar (its first and last are always written)."""


class ProgressEvent(BaseModel):
    """Where one progress bar stands: `n` of `total` `unit`s of `stage`, at `time` (Unix seconds)."""

    time: float
    stage: str
    n: int
    total: int | None = None
    unit: str = "it"
    done: bool = False
    """The bar closed (the stage finished, or stopped)."""


class bar(tqdm):  # noqa: N801 - a drop-in for tqdm, named like it
    """`tqdm` that also reports to `$CDX_PROGRESS_FILE` (see the module doc)."""

    def __init__(self, *args, **kwargs):
        self._events = os.environ.get(ENV) or None
        self._last = 0.0
        super().__init__(*args, **kwargs)
        self._report(force=True)

    def update(self, n: float | None = 1) -> bool | None:
        out = super().update(n)
        self._report()
        return out

    def close(self) -> None:
        if not self.disable:  # tqdm sets disable once closed: one closing event however often close() is called
            self._report(force=True, done=True)
        super().close()

    def __iter__(self):
        # tqdm's own __iter__ counts without calling update() (and closes the bar at the end): report from here
        for item in super().__iter__():
            yield item
            self._report()

    def _report(self, force: bool = False, done: bool = False) -> None:
        if not getattr(self, "_events", None):
            return
        now = time.time()
        if not force and now - self._last < EVERY_S:
            return
        self._last = now
        event = ProgressEvent(time=now, stage=str(self.desc or ""), n=int(self.n),
                              total=None if self.total is None else int(self.total), unit=str(self.unit), done=done)
        try:
            with open(self._events, "a", encoding="utf-8") as f:  # one short line: appends do not interleave
                f.write(json.dumps(event.model_dump()) + "\n")
        except OSError:
            self._events = None  # progress is never worth failing a run for


def last_event(path: str | Path) -> ProgressEvent | None:
    """The newest complete event in a progress file (a line still being written is skipped), or None."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    for line in reversed(data[: data.rfind(b"\n") + 1].splitlines()):
        try:
            return ProgressEvent.model_validate_json(line)
        except ValueError:
            continue
    return None


def first_event(path: str | Path, stage: str, since: float = 0.0) -> ProgressEvent | None:
    """The first event of `stage` at or after `since` in a progress file (for a rate since the stage
    began in this session: a resumed run appends to the same file), or None."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            e = ProgressEvent.model_validate_json(line)
        except ValueError:
            continue
        if e.stage == stage and e.time >= since:
            return e
    return None
