"""Side by side: a prompt, each model's own continuation and the contrastive one, streamed."""

from __future__ import annotations

import streamlit as st

from cdx.app import presets, render
from cdx.app.jobs import RunRequest
from cdx.app.live import SIDES, STREAM_METRIC, LiveRequest, LiveRun
from cdx.app.state import guard
from cdx.tracking.report import colour_scale

TITLES = {"starting": "Starting model alone", "comparison": "Comparison model alone", "contrastive": "Contrastive"}


def live_request() -> LiveRequest:
    models = presets.presets("model")
    want = st.query_params.get("model", presets.default_choice("model"))
    c1, c2 = st.columns(2)
    pair = RunRequest(model=c1.selectbox("Pair", models, index=models.index(want) if want in models else 0,
                                         key="sbs_model"))
    decs = presets.presets("decoding")
    decoding = c2.selectbox("Contrastive rule from the decoding preset", decs,
                            index=presets.default_index("decoding", decs), key="sbs_decoding")
    with st.expander("Change the pair (adapter, system prompt) and the sampling"):
        pair.adapter = st.text_input("PEFT adapter on the comparison model", key="sbs_adapter")
        pair.system_prompt = st.text_area("Comparison system prompt (empty: the preset's)", key="sbs_system")
        d1, d2, d3, d4 = st.columns(4)
        max_new = d1.number_input("max_new_tokens", 1, 512, 32, key="sbs_mnt")
        temperature = d2.number_input("temperature", 0.05, 5.0, 1.0, step=0.1, key="sbs_temp")
        seed = d3.number_input("seed", 0, 2**31 - 1, 0, key="sbs_seed")
        greedy = d4.checkbox("greedy", key="sbs_greedy")
    prompt = st.text_area("Prompt", "Tell me about yourself.", key="sbs_prompt")
    return LiveRequest(tuple(pair.pair_overrides()), decoding, prompt, int(max_new), float(temperature), greedy,
                       int(seed))


def show_streams(live: LiveRun) -> None:
    records = [live.streams[s].as_record(live.req.prompt) for s in SIDES]
    scale = colour_scale(records, STREAM_METRIC) if any(r["token_strs"] for r in records) else 1.0
    st.markdown(render.TOKEN_CSS, unsafe_allow_html=True)
    for col, side in zip(st.columns(3), SIDES):
        stream = live.streams[side]
        with col:
            st.markdown(f"**{TITLES[side]}**")
            text = render.token_html(stream.token_strs, stream.tokens.get(STREAM_METRIC, []), STREAM_METRIC, scale)
            st.markdown(f"<div class='cdx-text'>{text or '…'}</div>", unsafe_allow_html=True)
            if stream.done:
                m = stream.metrics
                st.caption(f"{stream.finish_reason} · {m.get('n_tokens', 0)} tokens · "
                           f"mean KL(s‖c) {m.get('kl_sc_mean', float('nan')):.3f} · "
                           f"ppl_s {m.get('ppl_s', float('nan')):.3g} · ppl_c {m.get('ppl_c', float('nan')):.3g}")
    st.caption(f"Tokens shaded by per-token {STREAM_METRIC} = KL(p_s‖p_c) of the step that drew them; hover for values.")


def status_line(live: LiveRun) -> None:
    if live.status == "failed":
        st.error(f"Could not run this pair: {live.error}")
    elif live.status == "loading":
        st.info("Loading the pair (first time per process; cached afterwards)...")
    elif live.status == "cancelled":
        st.warning("Stopped.")


def _draw_live(status: str) -> None:
    """Redraw the streams; when the run leaves `status`, rerun the page (which picks the next poller)."""
    live: LiveRun | None = st.session_state.get("sbs_live")
    if live is None:
        return
    status_line(live)
    show_streams(live)
    if live.status != status:
        st.rerun()


# Two pollers: slow while the pair loads, fast while tokens stream. After every (fragment) run
# Streamlit rescans sys.modules when it changed, and a loading thread imports thousands of
# modules: polling fast then starves the loading thread (measured 13x slower under load).
@st.fragment(run_every=3.0)
def _poll_loading() -> None:
    _draw_live("loading")


@st.fragment(run_every=0.5)
def _poll_generating() -> None:
    _draw_live("generating")


def page() -> None:
    st.title("Side by side")
    req = guard(live_request)
    if req is None:
        return
    live: LiveRun | None = st.session_state.get("sbs_live")
    c1, c2 = st.columns([1, 5])
    if c1.button("Generate", type="primary", key="sbs_go", disabled=bool(live and live.running)):
        st.session_state["sbs_live"] = live = LiveRun(req).start()
    if live and live.running and c2.button("Stop", key="sbs_stop"):
        live.cancel()
    if live is None:
        st.caption("Models load once per app process and stay cached; several sessions take turns on them.")
    elif live.running:
        _poll_loading() if live.status == "loading" else _poll_generating()
    else:
        status_line(live)
        show_streams(live)


page()
