"""The building blocks of the config checks: the problem list, schema and key checks, and the
one-line messages they make (`where.key=value is not valid: ...`). `cdx.config.groups` checks each
group with them; `cdx.config.validate` runs those checks on a composed config."""

from __future__ import annotations

import copy
import inspect
import logging
import socket
import typing
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ValidationError

from cdx.errors import CdxUserError

log = logging.getLogger(__name__)

HYDRA_KEYS = {"_target_", "_convert_", "_recursive_", "_partial_", "_args_"}
RUNTIME_KEYS = {"decoding": {"pair"}}
"""Keys that the task passes in at run time (`???` in the YAML)."""
PROMPT_SOURCES = "cdx.decoding.prompts."


class ConfigError(CdxUserError):
    """The composed config is invalid; the message has one line per problem."""


class Problems(list):
    """Problems found so far (one line each) and warnings."""

    def __init__(self) -> None:
        super().__init__()
        self.warnings: list[str] = []
        self.resolved: dict[str, object] = {}
        """Top-level key -> its resolved plain value (resolving is most of the cost: done once)."""


def container(cfg: DictConfig, key: str, problems: Problems) -> dict | None:
    """cfg[key] as a plain resolved dict (`???` kept as the string '???'); None if absent or unresolvable."""
    node = cfg.get(key) if isinstance(cfg, DictConfig) else None
    if not isinstance(node, DictConfig):
        return None
    if key in problems.resolved and node._get_root() is cfg:
        return cast(dict, copy.deepcopy(problems.resolved[key]))
    try:
        return cast(dict, OmegaConf.to_container(node, resolve=True, throw_on_missing=False))
    except Exception as e:  # noqa: BLE001 - an interpolation error is reported as the user's problem
        problems.append(f"{key}: cannot resolve its values ({e})")
        return None


def missing(cfg: DictConfig, key: str, problems: Problems) -> bool:
    """Report mandatory values (`???`) left unset under cfg[key]; True if any."""
    node = cfg.get(key)
    if not isinstance(node, DictConfig):
        return False
    runtime = RUNTIME_KEYS.get(key, set())
    # unresolved: a ??? is found without resolving every interpolation of the group (OmegaConf.missing_keys does)
    found = _missing_paths(OmegaConf.to_container(node, resolve=False, throw_on_missing=False))
    keys = sorted(k for k in found if k.split(".")[0] not in runtime)
    for k in keys:
        problems.append(f"{key}.{k} is required but not set (???): give it on the command line, e.g. {key}.{k}=...")
    return bool(keys)


def _missing_paths(data, prefix: str = "") -> list[str]:
    """Dotted paths of the ??? values in a plain container."""
    if data == "???":
        return [prefix]
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    return [p for k, v in items for p in _missing_paths(v, f"{prefix}.{k}" if prefix else str(k))]


def check_schema(schema: type[BaseModel], data: dict, where: str, problems: Problems, what: str | None = None) -> bool:
    """Validate `data` against `schema`; one problem line per error. True if valid.

    `what` names the owner of the options in an unknown-key line (default: `where`)."""
    try:
        schema.model_validate(data)
        return True
    except ValidationError as e:
        errors = cast(list[dict], e.errors())  # pydantic's ErrorDetails are TypedDicts
    for err in _one_per_field(errors):
        problems.append(describe(err, schema, where, what))
    # Field errors stop pydantic before the cross-field checks: run those on the valid fields too,
    # so one run lists every problem (e.g. top_p=1.5 and num_beams with sampling).
    bad = {err["loc"][0] for err in errors if err["loc"]}
    if bad:
        try:
            schema.model_validate({k: v for k, v in data.items() if k not in bad})
        except ValidationError as e:
            problems.extend(describe(cast(dict, err), schema, where) for err in e.errors() if not err["loc"])
    return False


def _one_per_field(errors: list[dict]) -> list[dict]:
    """A value that fits no member of a union (`str | list[str] | None`) gets one error per member: keep one,
    marked so `describe` names the field's type instead of the first member's complaint."""
    out, seen = [], set()
    for err in errors:
        loc = list(err["loc"])
        cut = next((i for i, x in enumerate(loc) if isinstance(x, str) and _is_type_tag(x)), None)
        if cut is None:
            out.append(err)
            continue
        key = tuple(loc[:cut])
        if key not in seen:
            seen.add(key)
            field_input = err.get("input") if cut == len(loc) - 1 else None
            out.append({**err, "loc": key, "type": "union", "input": field_input, "union_input": err.get("input")})
    return out


def _is_type_tag(x: str) -> bool:
    """pydantic names a union member in `loc` by its type: str, list[str], function-after[...], literal[...]."""
    return x in ("str", "int", "float", "bool", "none", "dict", "list", "nullable") or "[" in x


def describe(err: dict, schema: type[BaseModel], where: str, what: str | None = None) -> str:
    """One pydantic error as `where.key=value: must be ...`."""
    loc = [str(x) for x in err["loc"]]
    msg = err["msg"].removeprefix("Value error, ")
    if not loc:
        return f"{where}: {msg}"
    name = ".".join([where, *loc])
    if err["type"] == "extra_forbidden":
        owner = ".".join([what or where, *loc[:-1]])
        return f"{name} is not an option of {owner}; options: {_options(schema, loc[:-1])}"
    if err["type"] == "missing":
        return f"{name} is required but not set: give {name}=..."
    valid = _valid(err, schema, loc)
    value = err.get("input") if err["type"] != "union" else _value_of(err)
    return f"{name}={_short(value)} is not valid: {valid or msg}"


def _value_of(err: dict):
    return err.get("input") if err.get("input") is not None else err.get("union_input")


def _short(value) -> str:
    """repr(value), cut to 200 characters (a fuzzed megabyte string stays one readable line)."""
    text = repr(value)
    return text if len(text) <= 200 else text[:150] + f"... ({len(text)} characters)"


def _options(schema: type[BaseModel], loc: list[str]) -> list[str]:
    sub = _schema_at(schema, loc)
    if sub is None:
        return []
    return sorted(f.alias or k for k, f in sub.model_fields.items())


def _schema_at(schema: type[BaseModel] | None, loc: list[str]) -> type[BaseModel] | None:
    for key in loc:
        f = schema.model_fields.get(key) if schema is not None else None
        if f is None:
            return None
        schema = _submodel(f.annotation)
    return schema


def _submodel(annotation) -> type[BaseModel] | None:
    return next((a for a in typing.get_args(annotation) or (annotation,)
                 if inspect.isclass(a) and issubclass(a, BaseModel)), None)


def _valid(err: dict, schema: type[BaseModel], loc: list[str]) -> str | None:
    kind, ctx = err["type"], err.get("ctx") or {}
    field = _field(schema, loc)
    optional = field is not None and type(None) in typing.get_args(field.annotation)
    null = " (or null for off)" if optional and field.default is None else ""
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") and field is not None:
        return f"must be {_range(field.metadata)}{null}"
    if kind == "finite_number":
        return "must be a finite number, not NaN or infinity"
    if kind == "literal_error":
        return f"use one of {ctx.get('expected')}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"must be an integer{null}"
    if kind in ("float_type", "float_parsing"):
        return f"must be a number{null}"
    if kind in ("bool_type", "bool_parsing"):
        return "must be true or false"
    if kind == "too_short":
        return "must not be empty" if not ctx.get("min_length", 1) > 1 else f"needs at least {ctx['min_length']} items"
    if kind == "string_type":
        return f"must be a string{null}"
    if kind in ("list_type", "dict_type"):
        return f"must be a {'list' if kind == 'list_type' else 'mapping'}{null}"
    if kind == "union" and field is not None:
        return f"must be {_type_words(field.annotation)}"
    if kind == "string_pattern_mismatch":
        return "must be an http(s) URL such as http://127.0.0.1:8000/v1"
    return None


def _field(schema: type[BaseModel], loc: list[str]):
    fields = schema.model_fields
    if len(loc) >= 1 and loc[0] in fields:
        f = fields[loc[0]]
        if len(loc) > 1:
            sub = _submodel(f.annotation)
            return _field(sub, loc[1:]) if sub is not None else None
        return f
    return None


def _type_words(annotation) -> str:
    """`str | list[str] | None` as 'a string, a list of strings or null'."""
    words = {str: "a string", int: "an integer", float: "a number", bool: "true or false", dict: "a mapping",
             type(None): "null"}
    parts = []
    for a in typing.get_args(annotation) or (annotation,):
        origin = typing.get_origin(a)
        if a in words:
            parts.append(words[a])
        elif origin is list:
            inner = (typing.get_args(a) or (str,))[0]
            parts.append("a list of " + words.get(inner, "values").removeprefix("a ").removeprefix("an ") + "s")
        elif origin is typing.Literal:
            parts.append("one of " + ", ".join(repr(x) for x in typing.get_args(a)))
        else:
            parts.append(getattr(a, "__name__", str(a)))
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def _range(metadata: list) -> str:
    lo = hi = None
    for m in metadata:
        for attr, kind in (("gt", "("), ("ge", "["), ("lt", ")"), ("le", "]")):
            v = getattr(m, attr, None)
            if v is not None:
                if kind in "([":
                    lo = (kind, v)
                else:
                    hi = (kind, v)
    if lo and hi:
        return f"in {lo[0]}{_num(lo[1])}, {_num(hi[1])}{hi[0]}"
    if lo:
        return f"{'>' if lo[0] == '(' else '>='} {_num(lo[1])}"
    if hi:
        return f"{'<' if hi[0] == ')' else '<='} {_num(hi[1])}"
    return "a valid value"


def _num(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def check_keys(target: Callable[..., Any], data: dict, where: str, problems: Problems,
               extra: AbstractSet[str] = frozenset()) -> None:
    """Every key of `data` is a parameter of `target` (a class or function), a Hydra key, or in `extra`."""
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = set(params) | HYDRA_KEYS | set(extra)
    for key in sorted(set(data) - known):
        options = sorted(k for k in (set(params) | set(extra)) if k != "self")
        problems.append(f"{where}.{key} is not an option of {getattr(target, '__name__', target)}; options: {options}")


def locate(path: str, where: str, problems: Problems) -> Any:
    """The object a `_target_` names (a class or function), or None after naming the failure in `problems`."""
    from hydra.utils import get_object

    try:
        return get_object(path)
    except Exception as e:  # noqa: BLE001 - any import failure is the user's bad _target_
        problems.append(f"{where}._target_={path!r} cannot be imported ({type(e).__name__}: {e})")
        return None


def local_path_missing(path: str) -> bool:
    """A path that looks local (./, /, ~) and does not exist."""
    return path.startswith((".", "/", "~")) and not Path(path).expanduser().exists()


def port_refuses(url: str, timeout: float) -> str | None:
    """Why a TCP connection to the URL's host and port fails (None when it connects)."""
    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    if not host:
        return "no host in the URL"
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except ConnectionRefusedError:
        return f"connection refused at {host}:{port}"
    except socket.gaierror:
        return f"unknown host {host!r}"
    except TimeoutError:
        return f"no answer from {host}:{port} within {timeout:g} s"
    except OSError as e:
        return f"{host}:{port} unreachable ({e.strerror or e})"
