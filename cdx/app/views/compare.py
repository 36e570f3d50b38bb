"""Compare: choose a pair, a decoding preset and a task, and run it as the CLI would, in the background."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import cast

import streamlit as st
from omegaconf import OmegaConf

from cdx.app import presets
from cdx.app.checks import FieldProblem, range_problems, request_problems
from cdx.app.jobs import RunRequest, check_request, new_run_dir, shown_command
from cdx.app.jobs_view import jobs_panel
from cdx.app.state import app_root, jobs


@st.cache_data(show_spinner=False)
def decoding_defaults(preset: str) -> dict:
    """The preset's own values of the parameters the page exposes (from the composed config)."""
    d = cast(dict, OmegaConf.to_container(presets.compose([f"decoding={preset}"]).decoding, resolve=True))
    rule = d.get("rule", {})
    return {"temperature": d.get("temperature"), "max_new_tokens": d.get("max_new_tokens"),
            "generations_per_prefix": d.get("generations_per_prefix"), "strategy": d.get("strategy"),
            "alpha": rule.get("alpha"), "rule": str(rule.get("_target_", "")).rsplit(".", 1)[-1]}


class Slots(dict):
    """An empty element under each field, filled with that field's problem once the form is checked."""

    def add(self, name: str) -> None:
        self[name] = st.empty()


def _pair_inputs(req: RunRequest, slots: Slots) -> None:
    models = presets.presets("model")
    req.model = st.selectbox("Pair (model preset)", models, index=models.index(req.model) if req.model in models else 0,
                             key="cmp_model", help="conf/model/<name>.yaml")
    st.caption(presets.describe("model", req.model))
    with st.expander("Change the pair: paths, adapter, system prompt, interpolation"):
        req.starting_path = st.text_input("Starting model path (empty: the preset's)", key="cmp_spath")
        slots.add("starting_path")
        req.comparison_path = st.text_input("Comparison model path (empty: the preset's)", key="cmp_cpath")
        slots.add("comparison_path")
        req.adapter = st.text_input("PEFT adapter on the comparison model (folder or hub id)", key="cmp_adapter")
        slots.add("adapter")
        req.system_prompt = st.text_area("Comparison system prompt (empty: the preset's)", key="cmp_system")
        slots.add("system_prompt")
        if st.checkbox("Interpolate the comparison weights", key="cmp_interp_on"):
            req.interpolation = st.number_input("lambda (0 = starting, 1 = comparison)", value=0.5, step=0.25,
                                                key="cmp_interp")
            slots.add("interpolation")


def _number(where, label: str, value, key: str, slots: Slots, name: str, **kw):
    """A number input with no browser-side bounds (a value out of them would silently keep the old one);
    the bounds are checked in `checks.RANGES`, the problem shown right below."""
    out = where.number_input(label, value=value, key=key, **kw)
    with where:
        slots.add(name)
    return out


def _decoding_inputs(req: RunRequest, slots: Slots) -> dict:
    decs = presets.presets("decoding")
    req.decoding = st.selectbox("Decoding preset", decs, index=presets.default_index("decoding", decs),
                                key="cmp_decoding")
    st.caption(presets.describe("decoding", req.decoding))
    d = decoding_defaults(req.decoding)
    c1, c2, c3 = st.columns(3)
    params = {"max_new_tokens": _number(c1, "max_new_tokens", int(d["max_new_tokens"]), "cmp_mnt", slots,
                                        "max_new_tokens", step=1),
              "generations_per_prefix": _number(c2, "generations per prompt", int(d["generations_per_prefix"]),
                                                "cmp_gpp", slots, "generations_per_prefix", step=1)}
    if d["strategy"] != "greedy":
        params["temperature"] = _number(c3, "temperature", float(d["temperature"]), "cmp_temp", slots, "temperature",
                                        step=0.1)
    if d["alpha"] is not None:
        params["rule.alpha"] = _number(st.container(), "alpha (amplification)", float(d["alpha"]), "cmp_alpha", slots,
                                       "rule.alpha", step=0.5)
    # only what differs from the preset goes on the command line: the command stays short
    req.params = {k: v for k, v in params.items() if v != d.get(k.split(".")[-1])}
    return params


def _prompt_inputs(req: RunRequest, slots: Slots) -> dict:
    req.single = st.radio("Prompts", ["builtin set", "one prompt"], horizontal=True, key="cmp_psrc") == "one prompt"
    if req.single:
        req.prompt = st.text_input("Prompt", "Tell me about yourself.", key="cmp_prompt")
        slots.add("prompt")
        return {}
    req.limit = _number(st.container(), "How many builtin prompts", 4, "cmp_limit", slots, "limit", step=1)
    return {"limit": req.limit}


def request_from_widgets(slots: Slots) -> tuple[RunRequest, dict]:
    """The request the widgets describe, and the numbers the page bounds (for `checks.range_problems`)."""
    defaults = {k: st.query_params[k] for k in ("model", "task") if k in st.query_params}
    req = RunRequest(model=defaults.get("model", presets.default_choice("model") or "default"),
                     decoding=presets.default_choice("decoding") or "sample")
    left, right = st.columns(2)
    with left:
        _pair_inputs(req, slots)
        tasks = presets.tasks()
        want = defaults.get("task", "decode")
        req.task = st.selectbox("Task", tasks, index=tasks.index(want) if want in tasks else 0, key="cmp_task")
        numbers = _prompt_inputs(req, slots)
    with right:
        numbers |= _decoding_inputs(req, slots)
        req.extra = st.text_input("More overrides (as on the command line)", key="cmp_extra",
                                  placeholder="seed=1 report.top_n=10")
        slots.add("extra")
    return req, numbers


@st.cache_data(ttl=30, show_spinner=False, max_entries=64)
def _problems(req_json: str, numbers: tuple) -> list[FieldProblem]:
    # Cached by the request: composing and validating (which reads prompt files) runs once per change.
    req = RunRequest(**json.loads(req_json))
    return range_problems(dict(numbers)) + request_problems(req)


def show_problems(problems: list[FieldProblem], slots: Slots) -> None:
    """Each problem under its field; those tied to no field (or to a hidden one) above Start."""
    by_field: dict[str | None, list[str]] = {}
    for p in problems:
        by_field.setdefault(p.field if p.field in slots else None, []).append(p.message)
    for name, messages in by_field.items():
        (slots[name] if name else st).error("\n\n".join(messages))


def page() -> None:
    st.title("Compare two models")
    slots = Slots()
    req, numbers = request_from_widgets(slots)
    problems = _problems(json.dumps(asdict(req)), tuple(sorted(numbers.items())))
    show_problems(problems, slots)
    if not any(p.field == "extra" for p in problems):  # a command line that does not parse has no command
        st.markdown("**Command** (the app runs exactly this, in the background):")
        st.code(shown_command(req.argv(new_run_dir(app_root(), req.task))), language="bash", wrap_lines=True)
    if problems:
        st.caption("Fix the settings marked in red to start the run.")
    if st.button("Start run", type="primary", key="cmp_start", disabled=bool(problems)):
        problem = check_request(req)  # again at launch: a file named by the settings may have changed since
        if problem:
            st.error(problem)
        else:
            job = jobs().start(req)
            st.session_state["cmp_job"] = job.id
            st.toast(f"started {job.id}: {job.run_dir}")
    jobs_panel()


page()
