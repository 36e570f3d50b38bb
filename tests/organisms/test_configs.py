"""Every organism and suite config composes through Hydra; suites name only existing organisms."""

from __future__ import annotations

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from cdx.organisms import available, load_spec
from tests.conftest import CONF, compose

SUITES = sorted(p.stem for p in (CONF / "suite").glob("*.yaml"))


@pytest.mark.parametrize("name", available())
def test_organism_group_is_the_spec(name):
    cfg = compose(["task=plant", f"organism={name}"])
    assert load_spec(OmegaConf.to_container(cfg.organism, resolve=True)) == load_spec(name)


@pytest.mark.parametrize("name", SUITES)
def test_suite_composes_to_benchmark_jobs_of_known_organisms(name):
    cfg = compose([f"suite={name}"])
    assert cfg.task._target_ == "cdx.tasks.benchmark.run"
    raw = OmegaConf.load(CONF / "suite" / f"{name}.yaml")
    organisms = str(raw.hydra.sweeper.params.organism).split(",")
    assert organisms and set(organisms) <= set(available())
    prompts = instantiate(cfg.task.prompts).load()
    assert len(prompts) >= 40  # enough held-out prompts for the validation split to reach min_texts
