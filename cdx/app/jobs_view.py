"""The live view of background runs, shared by the pages that start them."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from cdx.app import render
from cdx.app.jobs import Job
from cdx.app.runs import RECORD_FILES, RunError, run_kind
from cdx.app.state import guard, jobs, text_run

SHOWN_JOBS = 5


def jobs_panel(tasks: tuple[str, ...] | None = None) -> None:
    """The background runs: polled every second while one runs, drawn once when none does."""
    if any(j.status == "running" for j in _jobs(tasks)):
        _live_panel(tasks)
    else:
        _panel(tasks)


@st.fragment(run_every=1.0)
def _live_panel(tasks: tuple[str, ...] | None) -> None:
    # Reruns only this fragment: the rest of the page stays interactive while a model works.
    _panel(tasks)
    if not any(j.status == "running" for j in _jobs(tasks)):
        st.rerun()  # all done: redraw the page once, which stops the polling


def _jobs(tasks: tuple[str, ...] | None) -> list[Job]:
    return [j for j in jobs().jobs() if tasks is None or j.task in tasks]


def _panel(tasks: tuple[str, ...] | None) -> None:
    all_jobs = _jobs(tasks)
    if not all_jobs:
        return
    st.subheader("Runs started from the app")
    st.caption(f"{len(all_jobs)} runs in outputs/app/ (read from their folders, so they outlive a restart); "
               "newest first.")
    shown = st.number_input("Show the newest", min_value=1, max_value=max(len(all_jobs), 1),
                            value=min(SHOWN_JOBS, len(all_jobs)), key=f"jobs_shown_{tasks}") \
        if len(all_jobs) > SHOWN_JOBS else len(all_jobs)
    for job in all_jobs[: int(shown)]:
        with st.container(border=True):
            job_view(job)
    if len(all_jobs) > shown:
        _history_table(all_jobs[int(shown):])


def _history_table(older: list[Job]) -> None:
    with st.expander(f"{len(older)} older runs"):
        st.dataframe(pd.DataFrame([{"run": j.id, "task": j.task, "status": j.status,
                                    "started": datetime.fromtimestamp(j.started).strftime("%Y-%m-%d %H:%M"),
                                    "folder": str(j.run_dir)} for j in older]), hide_index=True, width="stretch")


def job_view(job: Job) -> None:
    status = job.status
    st.markdown(f"**{job.id}** · {job.task} · `{status}` · {job.run_dir}")
    st.code(job.command, language="bash", wrap_lines=True)
    if status == "running":
        prog = job.progress()
        if prog:
            st.progress(prog.fraction, text=prog.text())
        else:
            st.progress(0.0, text=job.last_line()[:200] or "starting (loading the models)...")
        if job.proc is not None and st.button("Cancel", key=f"cancel_{job.id}"):
            job.cancel()
            st.rerun()
    elif status == "failed":
        st.error(f"The run failed: {job.error_message()}")
        with st.expander("Log"):
            st.code(job.log_tail(), language="text")
    elif status == "cancelled":
        st.warning("Cancelled; what the run wrote before is kept, and Resume continues it.")
    else:
        finished_view(job)
    if job.resumable and st.button("Resume", key=f"resume_{job.id}",
                                   help="the same command with resume=true, in the same folder"):
        jobs().resume(job)
        st.rerun()


def finished_view(job: Job) -> None:
    st.success(job.last_line())
    try:
        kind = run_kind(job.run_dir)
    except RunError:
        return
    if kind in RECORD_FILES:
        run = guard(text_run, job.run_dir)
        if run is not None:
            _outputs(job, run)
    if st.button("Open in the Run explorer" if kind in RECORD_FILES else "Open", key=f"open_{job.id}"):
        st.session_state["run_dir"] = str(job.run_dir)
        target = {"analyze": "findings.py", "search": "search_sweeps.py"}.get(kind, "explorer.py")
        st.switch_page(f"views/{target}")  # relative to main.py


def _outputs(job: Job, run) -> None:
    top = run.summary.top[:3] if run.summary else []
    by_id = {r["id"]: r for r in run.records}
    metric = "kl_sc" if run.records and "kl_sc" in run.records[0].get("tokens", {}) else None
    if metric:
        scale = render.run_scale(run.records, metric)
        st.markdown(render.TOKEN_CSS, unsafe_allow_html=True)
        for t in top:
            if t.id in by_id:
                st.markdown(render.text_html(by_id[t.id], metric, scale), unsafe_allow_html=True)

