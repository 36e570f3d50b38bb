"""Compare: choose a pair, a decoding preset and a task, and run it as the CLI would, in the background."""

from __future__ import annotations

import streamlit as st
from omegaconf import OmegaConf

from cdx.app import presets
from cdx.app.jobs import RunRequest, check_request, new_run_dir, shown_command
from cdx.app.jobs_view import jobs_panel
from cdx.app.state import app_root, jobs


@st.cache_data(show_spinner=False)
def decoding_defaults(preset: str) -> dict:
    """The preset's own values of the parameters the page exposes (from the composed config)."""
    d = OmegaConf.to_container(presets.compose([f"decoding={preset}"]).decoding, resolve=True)
    rule = d.get("rule", {})
    return {"temperature": d.get("temperature"), "max_new_tokens": d.get("max_new_tokens"),
            "generations_per_prefix": d.get("generations_per_prefix"), "strategy": d.get("strategy"),
            "alpha": rule.get("alpha"), "rule": str(rule.get("_target_", "")).rsplit(".", 1)[-1]}


def _pair_inputs(req: RunRequest) -> None:
    models = presets.presets("model")
    req.model = st.selectbox("Pair (model preset)", models, index=models.index(req.model) if req.model in models else 0,
                             key="cmp_model", help="conf/model/<name>.yaml")
    st.caption(presets.describe("model", req.model))
    with st.expander("Change the pair: paths, adapter, system prompt, interpolation"):
        req.starting_path = st.text_input("Starting model path (empty: the preset's)", key="cmp_spath")
        req.comparison_path = st.text_input("Comparison model path (empty: the preset's)", key="cmp_cpath")
        req.adapter = st.text_input("PEFT adapter on the comparison model (folder or hub id)", key="cmp_adapter")
        req.system_prompt = st.text_area("Comparison system prompt (empty: the preset's)", key="cmp_system")
        if st.checkbox("Interpolate the comparison weights", key="cmp_interp_on"):
            req.interpolation = st.number_input("lambda (0 = starting, 1 = comparison)", value=0.5, step=0.25,
                                                key="cmp_interp")


def _decoding_inputs(req: RunRequest) -> None:
    decs = presets.presets("decoding")
    req.decoding = st.selectbox("Decoding preset", decs, index=presets.default_index("decoding", decs),
                                key="cmp_decoding")
    st.caption(presets.describe("decoding", req.decoding))
    d = decoding_defaults(req.decoding)
    c1, c2, c3 = st.columns(3)
    params = {"max_new_tokens": c1.number_input("max_new_tokens", 1, 4096, int(d["max_new_tokens"]), key="cmp_mnt"),
              "generations_per_prefix": c2.number_input("generations per prompt", 1, 64,
                                                        int(d["generations_per_prefix"]), key="cmp_gpp")}
    if d["strategy"] != "greedy":
        params["temperature"] = c3.number_input("temperature", 0.05, 5.0, float(d["temperature"]), step=0.1,
                                                key="cmp_temp")
    if d["alpha"] is not None:
        params["rule.alpha"] = st.number_input("alpha (amplification)", 0.0, 20.0, float(d["alpha"]), step=0.5,
                                               key="cmp_alpha")
    # only what differs from the preset goes on the command line: the command stays short
    req.params = {k: v for k, v in params.items() if v != d.get(k.split(".")[-1])}


def _prompt_inputs(req: RunRequest) -> None:
    if st.radio("Prompts", ["builtin set", "one prompt"], horizontal=True, key="cmp_psrc") == "one prompt":
        req.prompt = st.text_input("Prompt", "Tell me about yourself.", key="cmp_prompt")
    else:
        req.limit = st.number_input("How many builtin prompts", 1, 1000, 4, key="cmp_limit")


def request_from_widgets() -> RunRequest:
    defaults = {k: st.query_params[k] for k in ("model", "task") if k in st.query_params}
    req = RunRequest(model=defaults.get("model", presets.default_choice("model") or "default"),
                     decoding=presets.default_choice("decoding") or "sample")
    left, right = st.columns(2)
    with left:
        _pair_inputs(req)
        tasks = presets.tasks()
        want = defaults.get("task", "decode")
        req.task = st.selectbox("Task", tasks, index=tasks.index(want) if want in tasks else 0, key="cmp_task")
        _prompt_inputs(req)
    with right:
        _decoding_inputs(req)
        req.extra = st.text_input("More overrides (as on the command line)", key="cmp_extra",
                                  placeholder="seed=1 report.top_n=10")
    return req


def page() -> None:
    st.title("Compare two models")
    req = request_from_widgets()
    preview = req.argv(new_run_dir(app_root(), req.task))
    st.markdown("**Command** (the app runs exactly this, in the background):")
    st.code(shown_command(preview), language="bash", wrap_lines=True)
    if st.button("Start run", type="primary", key="cmp_start"):
        problem = check_request(req)
        if problem:
            st.error(problem)
        else:
            job = jobs().start(req)
            st.session_state["cmp_job"] = job.id
            st.toast(f"started {job.id}: {job.run_dir}")
    jobs_panel()


page()
