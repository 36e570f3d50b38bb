"""`validate_config(cfg)`: the whole composed config checked before any model loads.

What it knows it checks strictly: the decoding group (strategy and both rule kinds), the model
pair, the prompts source (its files are read and parsed now), the report block, the search and
assistant groups, the logger, every task's own options (`task.*`), and the groups each task reads:
the analysis stages (analyze, pipeline, benchmark), the agent (pipeline), the knowledge base
(analyze, pipeline, benchmark, findings) and the organism (plant, benchmark). Keys of a known
`_target_` must be its parameters; a group whose `_target_` is the user's own class is only
imported. Top-level keys cdx does not define pass. All problems are gathered into one
`ConfigError`, one line each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from cdx.config import groups as G
from cdx.config.checks import (  # noqa: F401 - re-exported: the names callers know this module by
    HYDRA_KEYS,
    PROMPT_SOURCES,
    ConfigError,
    Problems,
    check_keys,
    check_schema,
    container,
    describe,
    local_path_missing,
    locate,
    missing,
    port_refuses,
)

log = logging.getLogger(__name__)


def validate_config(cfg: DictConfig) -> list[str]:
    """Raise `ConfigError` naming every bad value and what is valid; return (and log) the warnings."""
    problems = Problems()
    _check_resolves(cfg, problems)
    if not problems:  # the group checks read resolved values: an unresolvable one would stop them midway
        for check in _checks(_task_name(cfg), cfg):
            check(cfg, problems)
    problems[:] = [_with_source(cfg, line) for line in problems]
    for w in problems.warnings:
        log.warning("config: %s", w)
    if problems:
        head = "invalid config: " if len(problems) == 1 else f"invalid config ({len(problems)} problems):\n  "
        raise ConfigError(head + "\n  ".join(problems))
    return problems.warnings


NOT_RESOLVED = ("hydra", "output_dir")
"""Set by Hydra itself (its own errors name them), and resolvable only inside a Hydra run."""


def _check_resolves(cfg: DictConfig, problems: Problems) -> None:
    """Every value resolves: an interpolation such as ${oc.env:X} or ${nope} in a value is named now, one line each."""
    for key in cfg.keys() if isinstance(cfg, DictConfig) else []:
        if key in NOT_RESOLVED:
            continue
        try:
            node = cfg._get_node(key)
            problems.resolved[str(key)] = OmegaConf.to_container(node, resolve=True, throw_on_missing=False) \
                if isinstance(node, DictConfig | ListConfig) else cfg.get(key)
        except Exception as e:  # noqa: BLE001 - every resolution failure is a value the user wrote
            where = str(getattr(e, "full_key", None) or key)
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            problems.append(f"{where}: its value cannot be resolved ({first.strip()[:300]}): fix the interpolation "
                            "(${...}) or quote the text")


def _with_source(cfg: DictConfig, line: str) -> str:
    """A bad value that an interpolation copied from another option names that option too:
    `analysis.sample.alpha=None ... (its value comes from ${oc.select:decoding.rule.alpha,1.0})`."""
    path = line.split("=")[0].split(" ")[0].rstrip(":")
    node: Any = cfg
    try:
        for part in path.split("."):
            node = node._get_node(int(part) if isinstance(node, ListConfig) else part)
        raw = node._value() if node is not None and node._is_interpolation() else None
    except Exception:  # noqa: BLE001 - not a path of the config (a message about a file, a group): as it is
        return line
    return f"{line} (its value comes from {raw})" if isinstance(raw, str) else line


def _task_name(cfg: DictConfig) -> str | None:
    task = cfg.get("task")
    return str(task.get("name")) if isinstance(task, DictConfig) and task.get("name") is not None else None


def _checks(task: str | None, cfg: DictConfig) -> list[Callable[[DictConfig, Problems], None]]:
    from cdx.knowledge import check_config as check_knowledge_base

    if task == "summarize":  # reads a finished sweep: only its own options matter
        return [G.check_top_level, G.check_task, G.check_logger]
    checks: list[Callable[[DictConfig, Problems], None] | str] = [
        G.check_top_level, G.check_runtime, G.check_task, G.check_model, G.check_decoding, G.check_report,
        G.check_logger]
    checks += TASK_CHECKS.get(task or "", [])
    if task == "search" or (task == "pipeline" and _pipeline_searches(cfg)):
        checks += [G.check_search, G.check_assistant]
        search = cfg.get("search")
        if isinstance(search, DictConfig) and search.get("seeds") == "prompts" and task == "search":
            checks.append(G.check_prompts)
    if task != "search":
        checks.append(G.check_prompts)
    checks.append(check_knowledge_base)  # the file itself: cdx.knowledge.check_config (issue 23)
    return [getattr(G, c) if isinstance(c, str) else c for c in checks]


TASK_CHECKS: dict[str, list[str]] = {
    "analyze": ["check_analysis", "check_knowledge"],
    "pipeline": ["check_analysis", "check_agent", "check_knowledge"],
    "benchmark": ["check_analysis", "check_knowledge", "check_organism"],
    "plant": ["check_organism"],
    "findings": ["check_knowledge"],
}
"""The groups each task reads beyond the pair, decoding, prompts and report (named: cdx.config.groups)."""


def _pipeline_searches(cfg: DictConfig) -> bool:
    enabled = OmegaConf.select(cfg, "task.search.enabled", default=True, throw_on_resolution_failure=False)
    return enabled is True


# ---- helpers shared by the group checks --------------------------------------------------------


