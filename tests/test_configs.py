"""Every config in the core groups composes, and instantiates (hub pairs: their specs)."""

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cdx.decoding.rules import starting_nucleus
from cdx.models import ModelSpec
from tests.conftest import CONF, compose


def _names(group: str) -> list[str]:
    """The group's options; decoding/base.yaml is what presets extend, not an option (it has no rule)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if p.stem != "base")


def test_default_config_composes():
    cfg = compose()
    assert cfg.task.name == "decode"
    assert cfg.model.comparison.system_prompt and "pirate" in cfg.model.comparison.system_prompt
    assert cfg.model.starting.path == cfg.model.comparison.path == "embedded:smollm2-135m-instruct"


@pytest.mark.parametrize("name", _names("model"))
def test_every_model_config_builds_valid_specs(name):
    cfg = compose([f"model={name}", "model.comparison.adapter=/tmp/adapter"] if name == "smollm2_lora"
                  else [f"model={name}"])
    m = OmegaConf.to_container(cfg.model, resolve=True)
    for side in ("starting", "comparison"):
        spec = ModelSpec(**m[side])  # validates dtype / quantization / path
        assert spec.label
    assert set(m) == {"_target_", "_convert_", "starting", "comparison", "interpolation", "chat_template", "cache_dir"}
    if name.endswith("_4bit"):
        assert m["starting"]["quantization"] == m["comparison"]["quantization"] == "4bit"


def test_tiny_model_config_instantiates():
    pair = instantiate(compose(["model=tiny_random", "model.interpolation=0.5", "model.chat_template=false"]).model)
    assert pair.interpolation == 0.5 and not pair.starting.uses_chat_template


@pytest.mark.parametrize("name", _names("decoding"))
def test_every_decoding_config_instantiates(name, tiny_pair):
    dec = instantiate(compose([f"decoding={name}", "seed=5"]).decoding, pair=tiny_pair)
    assert dec.settings.seed == 5 and dec.pair is tiny_pair
    assert dec.settings.strategy == {"greedy": "greedy", "beam": "beam"}.get(name, "sample")


def test_parallel_option(tiny_pair):
    assert instantiate(compose(["decoding.parallel=false"]).decoding, pair=tiny_pair).settings.parallel is False
    assert instantiate(compose(["decoding=amplify"]).decoding, pair=tiny_pair).settings.parallel == "auto"


def test_amplify_alpha_sets_weights(tiny_pair):
    dec = instantiate(compose(["decoding=amplify", "decoding.rule.alpha=2"]).decoding, pair=tiny_pair)
    assert (dec.rule.starting_weight, dec.rule.comparison_weight) == (-2.0, 3.0)


def test_every_prompt_source(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"q": "one"}\n{"q": "two"}\n')
    assert instantiate(compose(["prompts=file", f"prompts.path={f}", "prompts.key=q"]).prompts).load() == ["one", "two"]
    assert instantiate(compose(["prompts=single", "prompts.text=hey"]).prompts).load() == ["hey"]
    assert len(instantiate(compose(["prompts=builtin", "prompts.limit=null"]).prompts).load()) >= 100
    with pytest.raises(Exception, match="path"):
        instantiate(compose(["prompts=previous_run"]).prompts).load()


def test_task_and_logger_configs():
    for name in _names("task"):
        assert compose([f"task={name}"]).task._target_.startswith("cdx.tasks.")
    assert type(instantiate(compose(["logger=none"]).logger)).__name__ == "NullTracker"


@pytest.mark.parametrize("name", _names("experiment"))
def test_every_experiment_is_valid_changes_the_defaults_and_decodes(name, tiny_pair):
    """An experiment must pass validation, differ from the default run, and its decoding must run."""
    from cdx.config import validate_config

    cfg = compose([f"experiment={name}"])
    validate_config(cfg)
    assert OmegaConf.to_container(cfg) != OmegaConf.to_container(compose())
    dec = instantiate(cfg.decoding, pair=tiny_pair)
    (batch,) = dec.generate(["Tell me about the sea."] * 1)
    assert batch and all(len(g.token_ids) == len(g.tokens["kl_sc"]) > 0 for g in batch)


def test_experiment_overrides_top_level_keys():
    """`# @package _global_` experiments reach keys outside their group (report.*), after _self_."""
    cfg, default = compose(["experiment=persona_amplify"]), compose()
    assert cfg.report.sort_key != default.report.sort_key and cfg.report.token_metric != default.report.token_metric


def test_topp_keeps_every_token_inside_the_starting_models_nucleus():
    """decoding=topp (also with model=llama3_pair): the rule never scores a token outside the
    starting model's own nucleus, whatever the comparison model prefers."""
    cfg = compose(["model=llama3_pair", "decoding=topp"])
    spec = ModelSpec(**OmegaConf.to_container(cfg.model.starting, resolve=True))
    assert spec.label
    rule = instantiate(cfg.decoding.rule)
    g = torch.Generator().manual_seed(0)
    lp_s, lp_c = (torch.log_softmax(torch.randn(32, 50, generator=g) * 3, -1) for _ in range(2))
    allowed = torch.isfinite(rule(lp_s, lp_c))
    nucleus = starting_nucleus(lp_s, cfg.decoding.rule.limit_to_starting_model_top_p)
    assert not (allowed & ~nucleus).any() and allowed.any(-1).all()
    assert (nucleus.sum(-1) < 50).all()  # the nucleus really excludes tokens on these peaked rows


def test_default_decoding_search_and_lora_preset_show_the_comparison_model(tiny_pair):
    """Issue 12 item 12: the defaults amplify what the comparison model (persona, fine-tune) does."""
    for overrides in ([], ["task=search"], ["model=smollm2_lora", "model.comparison.adapter=/tmp/adapter"]):
        rule = instantiate(compose(overrides).decoding, pair=tiny_pair).rule
        assert rule.direction() == "comparison"
        assert rule.describe().startswith("text the comparison model would write and the starting model would not")
    assert compose().report.sort_key == "auto"


def test_probdiff_is_the_upstream_rule_and_sample_its_alias(tiny_pair):
    probdiff, sample = compose(["decoding=probdiff"]), compose(["decoding=sample"])
    assert OmegaConf.to_container(probdiff.decoding) == OmegaConf.to_container(sample.decoding)
    rule = instantiate(probdiff.decoding.rule)
    assert rule.direction() == "starting"
    lp_s, lp_c = torch.log_softmax(torch.tensor([[2.0, 1.0, 0.0]]), -1), torch.log_softmax(torch.tensor([[0.0, 1.0, 2.0]]), -1)
    q = torch.softmax(rule(lp_s, lp_c), -1)[0]  # max(p_s - p_c, 0): only token 0, where p_s > p_c
    assert q[0] == pytest.approx(1.0) and q[1:].sum() == pytest.approx(0.0)
