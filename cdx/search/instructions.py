"""Instruction files: what the assistant is told, validated by pydantic with clear errors.

A file (YAML or JSON) holds the system and user templates, the seed demonstrations and, optionally,
the yes/no selection criterion. Templates are `str.format` strings: write a literal brace as `{{`.
Built-in targets live in `cdx/data/instructions/<name>.yaml`; any other value is read as a path.
"""

from __future__ import annotations

import json
import re
import string
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

REQUEST_FIELDS = ("examples", "n", "values_note")
"""Placeholders of the system and user templates."""

_DEFAULT_REPAIR = (
    "I could not read your answer. Write the new prompts again as a numbered list, one prompt per line, "
    "and nothing else."
)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def _check(template: str, allowed: tuple[str, ...], what: str) -> str:
    try:
        used = _fields(template)
    except ValueError as e:  # a lone brace
        raise ValueError(f"{what}: {e}; write a literal brace as '{{{{' or '}}}}'") from e
    unknown = sorted(used - set(allowed))
    if unknown:
        raise ValueError(f"{what} uses unknown placeholders {unknown}; allowed: {list(allowed)}")
    return template


class Criterion(BaseModel):
    """A yes/no question the assistant answers about each new prompt and its response."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1)
    """System message: the question, asking for a yes or no answer."""
    template: str = "Prompt: {prompt}\nResponse: {response}"
    """User message; placeholders {prompt} and {response}."""
    examples: list[str] = []
    """User messages shown before the judged one (worked examples)."""
    yes: list[str] = Field(default=["yes"], min_length=1)
    """Words that mean yes (matched as whole words; the first yes- or no-word in the reply decides)."""
    no: list[str] = Field(default=["no"], min_length=1)
    """Words that mean no."""

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        return _check(v, ("prompt", "response"), "criterion.template")

    @model_validator(mode="after")
    def _disjoint(self) -> Criterion:
        both = {w.lower() for w in self.yes} & {w.lower() for w in self.no}
        if both:
            raise ValueError(f"criterion yes and no share {sorted(both)}")
        return self


class Instructions(BaseModel):
    """Everything the assistant is told for one search target."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    """One line for people: what this target looks for."""
    system: str = Field(min_length=1)
    """System message. Placeholders: {examples}, {n}, {values_note}."""
    user: str = Field(min_length=1)
    """User message when past prompts are shown (as {examples}); {n} is how many new prompts to write."""
    user_first: str | None = None
    """User message when there is nothing to show yet (default: `user` with empty {examples})."""
    values_note: str = ""
    """Put in for {values_note} only when divergence values are shown (explains what they mean)."""
    example_with_value: str = "{i}. (score {value}) {prompt}"
    """One shown past prompt with its value; placeholders {i}, {value}, {prompt}."""
    example: str = "{i}. {prompt}"
    """One shown past prompt without a value; placeholders {i}, {prompt}."""
    repair: str = _DEFAULT_REPAIR
    """Follow-up user message after a reply with no readable prompts (sent once)."""
    seeds: list[str] = []
    """Seed demonstrations: the first bank."""
    criterion: Criterion | None = None
    """Optional custom selection criterion."""

    @field_validator("system", "user", "user_first")
    @classmethod
    def _request(cls, v: str | None, info) -> str | None:
        return v if v is None else _check(v, REQUEST_FIELDS, info.field_name)

    @field_validator("example_with_value")
    @classmethod
    def _with_value(cls, v: str) -> str:
        return _check(v, ("i", "value", "prompt"), "example_with_value")

    @field_validator("example")
    @classmethod
    def _example(cls, v: str) -> str:
        return _check(v, ("i", "prompt"), "example")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[str]) -> list[str]:
        bad = [i for i, s in enumerate(v) if not s.strip()]
        if bad:
            raise ValueError(f"seeds {bad} are empty")
        return v


class _Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans (YAML 1.2), so `yes:` and `[no]` stay words."""


_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def builtin_instructions() -> list[str]:
    root = resources.files("cdx") / "data" / "instructions"
    return sorted(p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.name.endswith((".yaml", ".yml", ".json")))


def _find(ref: str) -> Path:
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    root = resources.files("cdx") / "data" / "instructions"
    for ext in (".yaml", ".yml", ".json"):
        cand = root / f"{ref}{ext}"
        if cand.is_file():
            return Path(str(cand))
    raise FileNotFoundError(
        f"instructions {ref!r} is neither a file nor a built-in target; built-in: {builtin_instructions()}"
    )


def load_instructions(ref: str) -> Instructions:
    """A built-in target name (e.g. `social_bias`) or a path to a .yaml/.yml/.json file."""
    path = _find(ref)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"instructions file {path} is not valid {path.suffix[1:].upper()}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"instructions file {path} must hold a mapping, not {type(data).__name__}")
    data.setdefault("name", path.stem)
    try:
        return Instructions.model_validate(data)
    except ValidationError as e:
        raise ValueError(f"instructions file {path} is invalid:\n{e}") from e
