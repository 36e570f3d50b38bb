"""Every config in the core groups composes, and instantiates (hub pairs: their specs)."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cdx.models import ModelSpec
from tests.conftest import CONF, compose


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


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
    assert dec.seed == 5 and dec.pair is tiny_pair
    assert dec.strategy == {"greedy": "greedy", "beam": "beam"}.get(name, "sample")


def test_parallel_option(tiny_pair):
    assert instantiate(compose(["decoding.parallel=false"]).decoding, pair=tiny_pair).parallel is False
    assert instantiate(compose(["decoding=amplify"]).decoding, pair=tiny_pair).parallel == "auto"


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
def test_every_experiment_composes(name):
    cfg = compose([f"experiment={name}"])
    assert cfg.task.name


def test_experiment_overrides_top_level_keys():
    cfg = compose(["experiment=persona_amplify"])
    assert cfg.report.sort_key == "kl_cs_mean" and cfg.decoding.rule._target_.endswith("LogitDiff")


def test_llama3_pair_with_topp_composes():
    cfg = compose(["model=llama3_pair", "decoding=topp"])
    assert cfg.model.starting.path == "meta-llama/Meta-Llama-3-8B"
    assert cfg.decoding.top_p == 0.95 and cfg.decoding.rule.limit_to_starting_model_top_p == 0.95
    assert Path(CONF / "model" / "llama3_pair.yaml").is_file()
