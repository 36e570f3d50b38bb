"""Side by side: a prompt, each model's own continuations and the contrastive ones, streamed from
one batched decode; and a pasted text scored under both models."""

from __future__ import annotations

import streamlit as st

from cdx.app import presets, render
from cdx.app.jobs import RunRequest
from cdx.app.live import SIDES, LiveRequest, LiveRun, Stream, score_text, system_prompts, wilson
from cdx.app.state import guard
from cdx.tracking.report import LLR, colour_scale

TITLES = {"starting": "Starting model alone", "comparison": "Comparison model alone", "contrastive": "Contrastive"}
SHADING = LLR
"""Tokens are shaded by log p_c - log p_s: red where the comparison model likes the token more."""


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
        d1, d2, d3, d4, d5 = st.columns(5)
        max_new = d1.number_input("max_new_tokens", 1, 512, 32, key="sbs_mnt")
        temperature = d2.number_input("temperature", 0.05, 5.0, 1.0, step=0.1, key="sbs_temp")
        samples = d3.number_input("samples per side", 1, 16, 3, key="sbs_samples")
        seed = d4.number_input("seed", 0, 2**31 - 1, 0, key="sbs_seed")
        greedy = d5.checkbox("greedy", key="sbs_greedy")
    prompt = st.text_area("Prompt", "Tell me about yourself.", key="sbs_prompt")
    return LiveRequest(tuple(pair.pair_overrides()), decoding, prompt, int(max_new), float(temperature), greedy,
                       int(seed), 1 if greedy else int(samples))


def show_system_prompts(req: LiveRequest) -> None:
    prompts = guard(system_prompts, req.pair_overrides)
    if prompts is not None:
        st.caption(" · ".join(f"{side} system prompt: {p!r}" if p else f"{side}: no system prompt"
                              for side, p in prompts.items()))


def show_streams(live: LiveRun) -> None:
    records = [s.as_record(live.req.prompt) for side in SIDES for s in live.streams[side]]
    scale = colour_scale(records, SHADING) if any(r["token_strs"] for r in records) else 1.0
    st.markdown(render.TOKEN_CSS, unsafe_allow_html=True)
    for col, side in zip(st.columns(3), SIDES):
        with col:
            st.markdown(f"**{TITLES[side]}**")
            _column(live.streams[side], live.req.prompt, scale)
    st.markdown(render.colour_bar(SHADING, scale), unsafe_allow_html=True)
    st.caption("Tokens shaded by log p_c − log p_s of the token (blue: the starting model likes it more, red: the "
               "comparison model does); hover a token for its value and both log-probs.")


def _column(streams: list[Stream], prompt: str, scale: float) -> None:
    for i, stream in enumerate(streams):
        text = render.record_tokens_html(stream.as_record(prompt), SHADING, scale)
        st.markdown(f"<div class='cdx-text'>{text or '…'}</div>", unsafe_allow_html=True)
        if stream.done:
            m = stream.metrics
            st.caption(f"sample {i + 1} · {stream.finish_reason} · {m.get('n_tokens', 0)} tokens · "
                       f"mean KL(s‖c) {m.get('kl_sc_mean', float('nan')):.3f} · "
                       f"ppl_s {m.get('ppl_s', float('nan')):.3g} · ppl_c {m.get('ppl_c', float('nan')):.3g}")
    if len(streams) > 1 and all(s.done for s in streams):
        st.caption(rates_line(streams, st.session_state.get("sbs_word", "")))


def rates_line(streams: list[Stream], word: str) -> str:
    """Per-side rates over its samples: ended by the model, mean length, and a word's rate if asked."""
    n = len(streams)
    ended = sum(s.finish_reason in ("eos", "stop") for s in streams)
    parts = [f"{n} samples", f"ended by the model {ended}/{n}",
             f"mean {sum(s.metrics.get('n_tokens', 0) for s in streams) / n:.1f} tokens"]
    if word.strip():
        hits = sum(word.strip().lower() in "".join(s.token_strs).lower() for s in streams)
        lo, hi = wilson(hits, n)
        parts.append(f"{word.strip()!r} in {hits}/{n} ({hits / n:.0%}, 95% CI {lo:.0%}–{hi:.0%})")
    return " · ".join(parts)


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


def score_section(req: LiveRequest) -> None:
    """A pasted continuation of the prompt, teacher-forced under both models (as task=score does)."""
    with st.expander("Score a text under both models"):
        text = st.text_area("Continuation of the prompt above", key="sbs_score_text")
        if st.button("Score", key="sbs_score"):
            if not text.strip():
                st.error("Paste a text to score: the continuation is empty.")
                return
            stream = guard(score_text, req.pair_overrides, req.prompt, text)
            if stream is not None:
                st.session_state["sbs_scored"] = stream
        scored: Stream | None = st.session_state.get("sbs_scored")
        if scored is not None:
            rec = scored.as_record(req.prompt)
            scale = colour_scale([rec], SHADING)
            st.markdown(render.text_html(rec, SHADING, scale), unsafe_allow_html=True)
            st.markdown(render.colour_bar(SHADING, scale), unsafe_allow_html=True)
            ls, lc = sum(scored.tokens.get("logp_s", [])), sum(scored.tokens.get("logp_c", []))
            m = scored.metrics
            st.caption(f"{m.get('n_tokens', 0)} tokens · log p_s {ls:.2f} · log p_c {lc:.2f} · "
                       f"log p_c − log p_s {lc - ls:+.2f} · ppl_s {m.get('ppl_s', float('nan')):.3g} · "
                       f"ppl_c {m.get('ppl_c', float('nan')):.3g} · mean KL(s‖c) {m.get('kl_sc_mean', float('nan')):.3f}")


def page() -> None:
    st.title("Side by side")
    req = guard(live_request)
    if req is None:
        return
    show_system_prompts(req)
    empty = not req.prompt.strip()
    if empty:
        st.error("Give a prompt: the prompt is empty (each column continues it).")
    live: LiveRun | None = st.session_state.get("sbs_live")
    c1, c2, c3 = st.columns([1, 1, 4])
    if c1.button("Generate", type="primary", key="sbs_go", disabled=bool(empty or (live and live.running))):
        st.session_state["sbs_live"] = live = LiveRun(req).start()
    if live and live.running and c2.button("Stop", key="sbs_stop"):
        live.cancel()
    c3.text_input("Count a word in the samples", key="sbs_word", placeholder="arr")
    if live is None:
        st.caption("Models load once per app process and stay cached; several sessions take turns on them.")
    elif live.running:
        # statements, not a conditional expression: Streamlit's magic would draw its None as a badge
        if live.status == "loading":
            _poll_loading()
        else:
            _poll_generating()
    else:
        status_line(live)
        show_streams(live)
    if not empty:
        score_section(req)


page()
