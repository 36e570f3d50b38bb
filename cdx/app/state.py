"""Process-wide and per-session state of the app.

Process-wide (shared by every browser session, so each is thread-safe): the job registry and the
loaded runs cache. Per session: which run is open (`st.session_state["run_dir"]`, also settable
with the URL's `?run=<path>`).
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from cdx.app.jobs import JobManager
from cdx.app.runs import RECORD_FILES, RunError, RunInfo, TextRun, discover_runs, file_stamp, load_text_run, run_kind


def app_root() -> Path:
    """Where runs are found and started: $CDX_APP_ROOT, else the current directory (like the CLI)."""
    return Path(os.environ.get("CDX_APP_ROOT") or os.getcwd()).resolve()


def run_roots() -> list[Path]:
    root = app_root()
    return [root / "outputs", root / "multirun"]


@st.cache_resource
def job_manager(root: str) -> JobManager:
    return JobManager(Path(root))


def jobs() -> JobManager:
    return job_manager(str(app_root()))


@st.cache_data(ttl=5, show_spinner=False)
def _discover(roots: tuple[str, ...], kinds: tuple[str, ...] | None) -> list[RunInfo]:
    return discover_runs([Path(r) for r in roots], kinds)


def known_runs(kinds: tuple[str, ...] | None = None) -> list[RunInfo]:
    return _discover(tuple(str(r) for r in run_roots()), kinds)


@st.cache_resource(max_entries=4, show_spinner="Reading the run...")
def _text_run(path: str, stamp: tuple[int, int]) -> TextRun:
    # Keyed by the records file's (mtime, size): a run still writing is re-read when it grows.
    # cache_resource (not cache_data): a 10,000-text run is not copied on every rerun. Read-only.
    return load_text_run(path)


def text_run(path: Path) -> TextRun:
    kind = run_kind(path)
    records = path / RECORD_FILES.get(kind, "generations.jsonl")
    stamp = file_stamp(records) if records.is_file() else (0, 0)
    return _text_run(str(path.resolve()), stamp)


def pick_run(kinds: tuple[str, ...], key: str) -> Path | None:
    """A run chooser: a run found under outputs/ and multirun/, or a typed path.

    The choice is shared by the pages (`st.session_state["run_dir"]`, or `?run=<path>` in the URL).
    """
    if "run" in st.query_params and "run_dir" not in st.session_state:
        st.session_state["run_dir"] = st.query_params["run"]
    found = known_runs(kinds)
    options = ["", *(str(r.path) for r in found)]
    sel_key, txt_key, synced = f"{key}_sel", f"{key}_txt", f"{key}_synced"
    current = st.session_state.get("run_dir", "")
    if st.session_state.get(synced) != current:  # another page (or the URL) opened a run
        st.session_state[sel_key] = current if current in options else ""
        st.session_state[txt_key] = "" if current in options else current
    c1, c2 = st.columns([3, 2])
    chosen = c1.selectbox(f"Run ({' / '.join(kinds)} under outputs/ and multirun/)", options, key=sel_key,
                          format_func=lambda p: _label(p, found) if p else "choose a run",
                          on_change=lambda: st.session_state.update({txt_key: ""}))
    typed = c2.text_input("or type a run directory", key=txt_key)
    path = (typed or "").strip() or chosen
    st.session_state["run_dir"] = st.session_state[synced] = path
    return Path(path).expanduser() if path else None


def _label(path: str, found: list[RunInfo]) -> str:
    for r in found:
        if str(r.path) == path:
            try:
                return f"[{r.kind}] {r.path.relative_to(app_root())}"
            except ValueError:
                return f"[{r.kind}] {r.path}"
    return path


def guard(fn, *args):
    """fn(*args), or None with the error shown in the page (bad input never shows a stack trace)."""
    try:
        return fn(*args)
    except RunError as e:
        st.error(str(e))
    except Exception as e:  # noqa: BLE001 - any failure on user input becomes a message, never a trace
        while e.__cause__ is not None:
            e = e.__cause__
        st.error(f"{type(e).__name__}: {e}")
    return None
