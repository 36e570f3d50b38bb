"""Every search preset and assistant config composes, validates and runs one cycle."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

import cdx.tasks.search as search_task
from cdx.io import read_records
from cdx.run import run
from cdx.search import SearchSettings, load_instructions
from cdx.tasks.search import search_decoder
from tests.conftest import compose

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted(p.stem for p in (ROOT / "conf" / "search").glob("*.yaml"))

EXPECTED = {  # (instructions, context_values, n_cycles, n_repeat, weights (div, diversity, crit), required, use)
    "default": ("persona", "shown", 3, 1, (1.0, 1.0, 0.0), False, False),
    "persona": ("persona", "shown", 3, 1, (1.0, 1.0, 0.5), False, True),
    "refusal": ("refusal", "shown", 3, 1, (1.0, 1.0, 0.0), False, True),
    "knowledge_edit": ("knowledge_edit", "shown", 3, 1, (1.0, 1.0, 0.0), False, False),
    "social_bias": ("social_bias", "shown", 20, 10, (1.0, 1.0, 0.0), True, True),
    "social_bias_no_diversity": ("social_bias", "shown", 20, 10, (1.0, 0.0, 0.0), True, True),
    "social_bias_no_divergence": ("social_bias", "shown", 20, 10, (0.0, 1.0, 1.0), True, True),
    "social_bias_no_weighting": ("social_bias", "shown", 15, 5, (0.0, 0.0, 0.0), True, True),
    "social_bias_random_context_divs": ("social_bias", "random", 20, 15, (1.0, 1.0, 0.0), True, True),
    "social_bias_no_context_divs": ("social_bias", "hidden", 20, 10, (1.0, 1.0, 0.0), True, True),
    "social_bias_no_divs": ("social_bias", "hidden", 20, 10, (0.0, 1.0, 0.0), True, True),
}


def test_every_preset_is_listed():
    assert sorted(EXPECTED) == PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_values(preset):
    s = SearchSettings.from_dict(OmegaConf.to_container(compose([f"search={preset}"]).search, resolve=True))
    sub = s.subsample
    got = (s.instructions, s.context_values, s.n_cycles, s.n_repeat,
           (sub.divergence_weight, sub.diversity_weight, sub.criterion_weight), s.criterion.required, s.criterion.use)
    assert got == EXPECTED[preset]
    ins = load_instructions(s.instructions)
    assert ins.seeds and (not s.criterion.use or ins.criterion is not None)
    if preset.startswith("social_bias"):  # upstream's shared settings
        assert (s.generations_per_prefix, s.max_new_tokens, s.assistant_temperature, sub.size) == (5, 20, 0.9, 10)
    assert (s.metric, sub.diversity, s.near_duplicate_threshold) == {
        "refusal": ("kl_cs_mean", "harmonic", 0.95), "knowledge_edit": ("kl_sc_mean", "nearest", 0.9)}.get(
        preset, ("kl_sc_mean", "harmonic", 0.95))


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_runs_one_cycle(preset, tmp_path, monkeypatch):
    made = []
    original = search_task.build_assistant
    monkeypatch.setattr(search_task, "build_assistant", lambda spec: made.append(original(spec)) or made[-1])
    cfg = compose([f"search={preset}", "task=search", "model=tiny_random", "assistant=scripted", "search.n_cycles=1",
                   "search.n_repeat=1", "search.generations_per_prefix=1", "search.max_new_tokens=3",
                   "report.print_top=false"], tmp_path)
    with open_dict(cfg):
        cfg.assistant.match = {"Response:": "yes"}  # every judgement says yes
    result = run(cfg)
    assert result["cycles"] == 1 and result["n_added"] >= 1
    s = SearchSettings.from_dict(OmegaConf.to_container(cfg.search, resolve=True))
    ins = load_instructions(s.instructions)
    request = next(c for c in made[0].calls if c["max_tokens"] == s.assistant_max_tokens)
    text = request["messages"][0]["content"] + request["messages"][1]["content"]
    assert (ins.values_note.strip() in text) == (s.context_values != "hidden")
    shown = read_records(tmp_path / "stats.jsonl")[0]["shown_values"]
    assert (shown is None) == (s.context_values == "hidden")


def test_decoder_overrides_and_nulls(tiny_pair):
    cfg = compose(["task=search", "model=tiny_random"])
    s = SearchSettings.from_dict(OmegaConf.to_container(cfg.search, resolve=True))
    dec = search_decoder(cfg.decoding, tiny_pair, s)
    assert (dec.settings.generations_per_prefix, dec.settings.max_new_tokens) == (2, 24)
    cfg = compose(["task=search", "search.generations_per_prefix=null", "search.max_new_tokens=null"])
    s = SearchSettings.from_dict(OmegaConf.to_container(cfg.search, resolve=True))
    dec = search_decoder(cfg.decoding, tiny_pair, s)
    assert (dec.settings.generations_per_prefix, dec.settings.max_new_tokens) == (cfg.decoding.generations_per_prefix,
                                                                cfg.decoding.max_new_tokens)


def test_select_high_and_temperature_reach_the_settings():
    cfg = compose(["search.subsample.select_high=false", "search.subsample.temperature=0", "search.subsample.size=2"])
    sub = SearchSettings.from_dict(OmegaConf.to_container(cfg.search, resolve=True)).subsample
    assert (sub.select_high, sub.temperature, sub.size) == (False, 0, 2)
    with pytest.raises(ValueError, match="subsample.size"):
        SearchSettings.from_dict({"subsample": {"size": 0}})
    with pytest.raises(ValueError, match="search.subsample.tempreature"):
        SearchSettings.from_dict({"subsample": {"tempreature": 1}})


@pytest.mark.parametrize("model", ["tiny_random", "smollm2_lora", "llama3_pair"])
def test_search_identity_is_run_identitys(model):
    """The search's run identity (task=search's and the pipeline's sub-runs') has run_identity's keys, order
    and values, so a folder written before the search became a library call still resumes."""
    from cdx.io import texts_digest
    from cdx.search.job import search_identity
    from cdx.tasks.common import resolved_config, run_identity
    from cdx.tasks.search import load_seeds

    cfg = compose(["task=search", f"model={model}", "search=social_bias"])
    s = SearchSettings.from_dict(OmegaConf.to_container(cfg.search, resolve=True))
    ins = load_instructions(s.instructions)
    seeds = load_seeds(cfg.prompts, s, ins)
    c = resolved_config(cfg)
    ours = search_identity(c["seed"], c["model"], c["decoding"], c["search"], c["assistant"], seeds, ins)
    theirs = run_identity(cfg, "search", seeds, groups=("model", "decoding", "search", "assistant"),
                          instructions=texts_digest([ins.model_dump_json()]))
    assert ours == theirs and list(ours) == list(theirs)
