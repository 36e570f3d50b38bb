"""The CLI's config tree as the app sees it: preset names per group, and composed configs.

The app composes configs with Hydra's compose API over the same `conf/` the CLI uses, so a
preset means the same thing in the browser as on the command line. Hydra's global state is not
thread-safe, hence the lock (several browser sessions share one process).
"""

from __future__ import annotations

import threading

from omegaconf import DictConfig

from cdx.resources import conf_dir

CONF_DIR = conf_dir()
APP_TASKS = ("decode", "search", "analyze", "pipeline")
_LOCK = threading.Lock()


def presets(group: str) -> list[str]:
    """Option names of a config group (conf/<group>/*.yaml), e.g. presets('model'); decoding/base.yaml is
    what the decoding presets extend, not an option."""
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml") if p.stem != "base") if folder.is_dir() else []


def default_choice(group: str) -> str | None:
    """The option conf/config.yaml's defaults list picks for `group` (what the CLI uses unasked)."""
    import yaml

    defaults = yaml.safe_load((CONF_DIR / "config.yaml").read_text(encoding="utf-8")).get("defaults", [])
    for entry in defaults:
        if isinstance(entry, dict) and group in entry:
            return entry[group]
    return None


def default_index(group: str, options: list[str]) -> int:
    """Index of the CLI's default option in `options` (0 if it is not there)."""
    choice = default_choice(group)
    return options.index(choice) if choice in options else 0


def tasks() -> list[str]:
    """The app's tasks that this checkout has (conf/task/<name>.yaml), in the issue's order."""
    have = set(presets("task"))
    return [t for t in APP_TASKS if t in have]


def describe(group: str, name: str) -> str:
    """The comment block at the top of a preset file (its documentation)."""
    path = CONF_DIR / group / f"{name}.yaml"
    if not path.is_file():
        return ""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if not line.startswith("# @package"):
            lines.append(line.lstrip("# ").rstrip())
    return " ".join(lines)


def compose(overrides: list[str]) -> DictConfig:
    """The composed CLI config for these overrides (hydra.* and output_dir left unresolved)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    with _LOCK:
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=overrides)
