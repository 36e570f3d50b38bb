"""The Compare form's checks, run on every change and before launch: the page's own ranges, then the
CLI's `cdx.config.validate_config` on the composed config, each problem tied to the field it names.

Start is enabled only when this finds nothing, so what the page shows is what runs: a value the
page flags is never swapped for an older one behind the user's back.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from cdx.app import presets

RANGES: dict[str, tuple[float, float]] = {
    "max_new_tokens": (1, 4096), "generations_per_prefix": (1, 64), "temperature": (0.05, 5.0),
    "rule.alpha": (0.0, 20.0), "limit": (1, 1000),
}
"""The page's bounds (what a browser session can sensibly run); the CLI's own checks come after."""

FIELD_OF_KEY = {
    "decoding.max_new_tokens": "max_new_tokens", "decoding.generations_per_prefix": "generations_per_prefix",
    "decoding.temperature": "temperature", "decoding.rule.alpha": "rule.alpha", "decoding.rule": "rule.alpha",
    "prompts.text": "prompt", "prompts.limit": "limit", "prompts": "prompt",
    "model.comparison.adapter": "adapter", "model.comparison.system_prompt": "system_prompt",
    "model.starting.path": "starting_path", "model.comparison.path": "comparison_path",
    "model.interpolation": "interpolation",
}
"""A config key in a problem line -> the form field that sets it (longest key wins)."""
_KEY = re.compile(r"^(?:invalid config: )?\+*([\w.]+)")


class FieldProblem(BaseModel):
    """One reason the form cannot start, shown next to its field (`field` None: above Start)."""

    field: str | None
    """The form field (a key of `RANGES`, or prompt / extra / adapter / ...), None when none fits."""
    message: str


def range_problems(values: dict[str, float | int | None]) -> list[FieldProblem]:
    """Values outside the page's bounds, named with the bounds: `max_new_tokens=999999 is out of ...`."""
    out = []
    for name, value in values.items():
        low, high = RANGES[name]
        if value is not None and not low <= value <= high:
            out.append(FieldProblem(field=name, message=f"{name}={value:g} is out of range: give {low:g} to {high:g}"))
    return out


def field_of(line: str) -> str | None:
    """The form field a problem line of `validate_config` (or Hydra) names, if any."""
    m = _KEY.match(line.strip())
    key = m[1] if m else ""
    hits = [k for k in FIELD_OF_KEY if key == k or key.startswith(k + ".")]
    return FIELD_OF_KEY[max(hits, key=len)] if hits else None


def request_problems(req) -> list[FieldProblem]:
    """Everything wrong with a RunRequest before launch: adapter folder, extra overrides, the CLI's checks."""
    problems = _adapter_problems(req.adapter.strip())
    try:
        req.extra_overrides()
    except ValueError as e:  # shlex: "No closing quotation", "No escaped character"
        return [*problems, FieldProblem(field="extra", message=f"the extra overrides {req.extra!r} do not parse as "
                                        f"a command line ({e}); close the quote or escape it, e.g. seed=1 "
                                        "'++model.comparison.system_prompt=You are a pirate'")]
    return problems + config_problems(tuple(req.overrides()))


def _adapter_problems(adapter: str) -> list[FieldProblem]:
    if adapter and (adapter.startswith(("/", ".", "~")) or Path(adapter).expanduser().exists()):
        if not (Path(adapter).expanduser() / "adapter_config.json").is_file():
            return [FieldProblem(field="adapter", message=(
                f"adapter {adapter!r} is not a PEFT adapter folder (no adapter_config.json there); give the folder "
                "a LoRA training saved, or a hub id"))]
    return []


def config_problems(overrides: tuple[str, ...]) -> list[FieldProblem]:
    """Compose as the CLI would, then the CLI's own `validate_config`; one problem per line it reports."""
    from cdx.config import validate_config
    from cdx.errors import CdxUserError

    try:
        cfg = presets.compose(list(overrides))
    except Exception as e:  # noqa: BLE001 - Hydra's own message names the bad key or value
        return [FieldProblem(field=field_of(str(e)), message=f"the CLI would reject these settings: {e}")]
    try:
        validate_config(cfg)
    except CdxUserError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        lines = [ln for ln in lines if not ln.startswith("invalid config (")] or lines  # drop the "(n problems):" head
        return [FieldProblem(field=field_of(ln), message=ln.removeprefix("invalid config: ")) for ln in lines]
    return []
