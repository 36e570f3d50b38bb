"""Entry point: `python -m cdx.run [task=decode|score|search|summarize] [overrides]`.

A thin Hydra wrapper: the task is a `_target_` in conf/task/, called as `task_fn(cfg)`.
"""

from __future__ import annotations

import logging
import os

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    """Run the task chosen by `cfg.task` and return its headline metrics."""
    # The task's own options stay in cfg.task; its _target_ names a function of the whole config.
    return get_method(cfg.task._target_)(cfg)


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    metrics = run(cfg)
    objective = cfg.get("optimized_metric")
    return metrics.get(objective) if objective else None


if __name__ == "__main__":
    main()
