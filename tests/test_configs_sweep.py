"""Every config file of the sweep/tracking groups composes, with the values it promises."""

from __future__ import annotations

import importlib

import pytest
from hydra import compose as hcompose
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF, compose


def _names(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_with_hydra(overrides: list[str]):
    """The composed config including its `hydra` node (sweeper, launcher, mode, callbacks)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hcompose(config_name="config", overrides=overrides, return_hydra_config=True)


SWEEPS = {  # named sweep -> (swept key, values, decoding rule; None: the default decoding's rule)
    "interpolation": ("model.interpolation", "0,0.25,0.5,1,1.5", None),
    "amplify_alpha": ("decoding.rule.alpha", "0,0.5,1,2,4", "LogitDiff"),
    "temperature": ("decoding.temperature", "0.5,0.7,1.0,1.3", None),
}


def test_every_sweep_file_is_covered():
    assert set(_names("sweep")) == {*SWEEPS, "optuna_decoding"}


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_named_grid_sweep(name):
    key, values, rule = SWEEPS[name]
    cfg = compose_with_hydra([f"sweep={name}"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert dict(cfg.hydra.sweeper.params) == {key: values}
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper")
    assert OmegaConf.select(cfg, key, default="<absent>") != "<absent>"  # a typo would sweep a new key
    rule = rule or compose_with_hydra([]).decoding.rule._target_  # these sweeps keep the default decoding
    assert cfg.decoding.rule._target_.endswith(rule)
    assert cfg.hydra.sweep.dir.startswith(f"multirun/{name}/")
    assert get_class(cfg.hydra.callbacks.job_errors._target_).__name__ == "WriteJobError"


def test_optuna_sweep_composes():
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = compose_with_hydra(["sweep=optuna_decoding", "seed=3"])
    sw = cfg.hydra.sweeper
    assert sw._target_.endswith("OptunaSweeper") and sw.direction == "maximize"
    assert sw.n_trials == 20 and sw.n_jobs == 1 and sw.study_name == "cdx_decoding"
    assert sw.sampler._target_ == "optuna.samplers.TPESampler" and sw.sampler.seed == 3
    assert set(sw.params) == {"decoding.rule.alpha", "decoding.temperature", "decoding.rule.plausibility_beta"}
    assert cfg.decoding.rule._target_.endswith("LogitDiff")
    assert cfg.hydra.sweep.dir.startswith("multirun/optuna_decoding/")


def test_optuna_sweep_sets_the_objective():
    assert compose(["sweep=optuna_decoding"]).optimized_metric == "kl_sc_mean"


def test_wandb_logger_config():
    cfg = compose(["logger=wandb", "report.token_metric=js"])
    lg = OmegaConf.to_container(cfg.logger, resolve=True)
    assert lg == {"_target_": "cdx.tracking.wandb_tracker.WandbTracker", "project": "cdx", "entity": None,
                  "mode": None, "group": None, "job_type": None, "name": None, "tags": [], "notes": None,
                  "dir": None, "max_table_rows": 1000, "token_metric": "js", "artifacts": True}
    tracker = instantiate(cfg.logger)  # builds without contacting W&B (that happens in start())
    assert tracker.init_args["project"] == "cdx" and tracker.token_metric == "js" and tracker.run is None


def test_summarize_task_config():
    cfg = compose_with_hydra(["task=summarize", "sweep_dir=/some/sweep"])
    assert cfg.task._target_ == "cdx.tasks.summarize.run" and cfg.task.name == "summarize"
    assert cfg.hydra.run.dir == "/some/sweep/summary"
    assert cfg.task.x is None and cfg.task.png is True
    assert cfg.task.columns.kl_sc_mean == "token.kl_sc.mean" and cfg.task.columns.ppl_c == "ppl_c"
    assert set(cfg.task.plot) == {"divergence", "perplexity"}
    assert set(cfg.task.plot.divergence) | set(cfg.task.plot.perplexity) <= set(cfg.task.columns)
    importlib.import_module("cdx.tasks.summarize")


def test_summarize_needs_a_sweep_dir():
    cfg = compose(["task=summarize"])
    assert OmegaConf.is_missing(cfg, "sweep_dir")


def test_slurm_launcher_preset():
    cfg = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    la = cfg.hydra.launcher
    assert la._target_.endswith("SlurmLauncher") and la.partition == "gpu"
    assert (la.gpus_per_node, la.cpus_per_task, la.mem_gb, la.timeout_min) == (1, 8, 64, 240)
    assert (la.array_parallelism, la.max_num_timeout, list(la.setup)) == (16, 0, [])
    assert la.account is None and la.qos is None and dict(la.additional_parameters) == {}
    assert la.submitit_folder.endswith("/.submitit/%j")
