"""Property-based fuzzing of `validate_config` over every task and group (issue 23).

For each task (and the groups it reads) the real config is composed once with Hydra, then
hypothesis sets one or two leaf options at a time to generated values: wrong types, out-of-range
numbers, NaN/inf, huge integers, empty, blank, huge and any-Unicode strings, unresolvable
interpolations, empty lists and mappings, nulls. `validate_config` must accept the config or raise
`ConfigError` with one line per problem, one of which names the option set; any other exception
is a bug. A few accepted configs on `model=tiny_random` are then run for real (`cdx.run.run`):
each completes or ends in a user error, never another exception.

Seeded (`derandomize=True`): a failure reproduces from the test name alone. Every generated case
is counted (`CASES`); the module's last line of output states the total, and it must be >= 1000.
"""

from __future__ import annotations

import copy
import functools
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from cdx.config import ConfigError, validate_config
from tests.conftest import compose

CASES: dict[str, int] = {}
"""test id -> generated cases it ran (the module fixture checks the total)."""
MIN_CASES = 1000
PER_CONFIG = 110

CONFIGS: dict[str, tuple[str, ...]] = {
    "decode": ("model=tiny_random",),
    "score": ("task=score", "model=tiny_random"),
    "search": ("task=search", "model=tiny_random", "assistant=scripted"),
    "analyze": ("task=analyze", "model=tiny_random"),
    "pipeline": ("task=pipeline", "model=tiny_random", "assistant=scripted"),
    "benchmark": ("task=benchmark", "organism=tiny_ahoy"),
    "plant": ("task=plant", "organism=tiny_ahoy"),
    "findings": ("task=findings",),
    "summarize": ("task=summarize",),
    "wandb": ("logger=wandb", "model=tiny_random", "decoding=probdiff"),
}
SKIP = {"_target_", "_convert_", "_recursive_", "_partial_", "output_dir"}
"""Leaves not fuzzed: `_target_` names code to import (fuzzing it would import arbitrary modules);
output_dir is Hydra's run folder, set by Hydra, not by the user."""


@pytest.fixture(scope="module", autouse=True)
def _count_cases(request):
    yield
    total = sum(CASES.values())
    line = f"config fuzzing: {total} generated cases ({', '.join(f'{k} {v}' for k, v in sorted(CASES.items()))})"
    say(request, line)
    if len(CASES) >= len(CONFIGS):  # every config was fuzzed (not a -k selection)
        assert total >= MIN_CASES, line


def say(request, line: str) -> None:
    """One line on the terminal, past pytest's output capture (the count belongs in every CI log)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if capture is None or reporter is None:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


@functools.cache
def _composed(name: str) -> DictConfig:
    cfg = compose(list(CONFIGS[name]))
    with open_dict(cfg):
        cfg.output_dir = "/nonexistent-cdx-fuzz-out"
        if name == "summarize":
            cfg.sweep_dir = "/tmp"
    return cfg


def leaves(node, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf (list items as .<i>), interpolations included, `SKIP` keys left out."""
    out = []
    if isinstance(node, DictConfig):
        items = [(str(k), node._get_node(k)) for k in node.keys()]
    elif isinstance(node, ListConfig):
        items = [(str(i), node._get_node(i)) for i in range(len(node))]
    else:
        return [prefix]
    for key, child in items:
        if key in SKIP:
            continue
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_none() and not child._is_missing() \
                and not child._is_interpolation():
            out += leaves(child, path) or [path]
        else:
            out.append(path)
    return out


STRINGS = st.sampled_from(["", " ", "\n", "\x00", "nan", "inf", "-1", "0", "true", "null", "???", "${nope}",
                           "${oc.env:CDX_FUZZ_UNSET}", "/", "~", ".", "/no/such/path", "x" * 5000,
                           "\u202e\u0000\ud7ff\U0010ffff", "plain_s", "amp_c", "csv", "fisher", "cpu", "kl_sc"])
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70), st.sampled_from([0, 1, -1, 2, 2**31, 2**32, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 1.0, 1e-300]),
    st.text(max_size=40), STRINGS,
)
VALUES = st.one_of(
    SCALARS,
    st.lists(SCALARS, max_size=4),
    st.dictionaries(st.text(max_size=8), SCALARS, max_size=3),
    st.just([]), st.just({}),
)


def set_leaf(cfg: DictConfig, path: str, value) -> None:
    parent, _, key = path.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if isinstance(node, ListConfig):
        node[int(key)] = value
    else:
        OmegaConf.update(cfg, path, value, force_add=True, merge=False)


def assert_user_error_or_accepted(cfg: DictConfig, paths: list[str]) -> None:
    try:
        validate_config(cfg)
    except ConfigError as e:
        msg = str(e)
        lines = msg.splitlines()
        assert "Traceback" not in msg and all(len(line) < 3000 for line in lines), msg[:3000]
        assert any(names(msg, p) for p in paths), f"no line names {paths}: {msg[:3000]}"


def names(msg: str, path: str) -> bool:
    """The message names the option at `path`: the path itself, its group's path, or its key in its group."""
    parts = [p for p in path.split(".") if not p.isdigit()]
    options = {".".join(parts), ".".join(parts[:-1]) + ":" if len(parts) > 1 else parts[0]}
    return any(o in msg for o in options) or (len(parts) > 1 and parts[0] in msg and parts[-1] in msg)


def _fuzz(name: str, n_leaves: int) -> int:
    base = _composed(name)
    paths = leaves(base)
    count = 0

    @settings(derandomize=True, max_examples=PER_CONFIG // n_leaves, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(st.tuples(st.sampled_from(paths), VALUES), min_size=n_leaves, max_size=n_leaves))
    def case(changes):
        nonlocal count
        count += 1
        cfg = copy.deepcopy(base)
        with open_dict(cfg):
            for path, value in changes:
                try:
                    set_leaf(cfg, path, value)
                except Exception:  # noqa: BLE001 - OmegaConf refused the value itself (e.g. not a config type)
                    return
        assert_user_error_or_accepted(cfg, [p for p, _ in changes])

    case()
    return count


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_leaf_value_is_accepted_or_refused_by_name(name):
    CASES[name] = _fuzz(name, 1)
    assert CASES[name] >= PER_CONFIG * 0.9


def test_every_leaf_of_a_task_has_a_known_owner():
    """The fuzzer reaches every group the tasks read (a group it cannot see could not be fuzzed)."""
    groups = {p.split(".")[0] for name in CONFIGS for p in leaves(_composed(name))}
    assert {"analysis", "agent", "knowledge", "logger", "organism", "task", "decoding", "model", "prompts",
            "report", "search", "assistant", "seed", "resume"} <= groups


# ---- accepted configs run for real on tiny random models --------------------------------------------------

SMALL = ["model=tiny_random", "prompts.limit=2", "decoding.max_new_tokens=4", "decoding.batch_size=2",
         "report.print_top=false"]
RUN_OPTIONS = {
    "decoding.temperature": st.one_of(st.floats(0.05, 3.0), st.sampled_from([0.0, -1.0, math.nan, "1"])),
    "decoding.top_p": st.one_of(st.none(), st.floats(0.01, 1.0), st.just(1.5)),
    "decoding.top_k": st.one_of(st.none(), st.integers(-1, 50)),
    "decoding.generations_per_prefix": st.integers(0, 3),
    "decoding.min_new_tokens": st.integers(0, 6),
    "decoding.stop_strings": st.lists(st.text(max_size=3), max_size=2),
    "decoding.rule.alpha": st.one_of(st.floats(-1.0, 4.0), st.none()),
    "decoding.rule.plausibility_beta": st.floats(0.0, 1.2),
    "decoding.sampler": st.sampled_from(["inverse_cdf", "multinomial", "gumbel"]),
    "model.interpolation": st.one_of(st.none(), st.floats(-1.0, 2.0)),
    "report.sort_key": st.sampled_from(["auto", "kl_sc_mean", "js_max", "nope"]),
    "report.top_n": st.integers(0, 5),
    "seed": st.integers(-1, 2**33),
}


def test_accepted_configs_run_to_the_end_or_stop_with_a_user_error(tmp_path_factory):
    from cdx.run import run, user_error

    bases = {task: compose([*SMALL, f"task={task}"]) for task in ("decode", "score")}
    outcomes: list[str] = []

    @settings(derandomize=True, max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(sorted(bases)), st.dictionaries(st.sampled_from(sorted(RUN_OPTIONS)), st.none(),
                                                           min_size=1, max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({k: RUN_OPTIONS[k] for k in keys})))
    def case(task, values):
        cfg = copy.deepcopy(bases[task])
        with open_dict(cfg):
            cfg.output_dir = str(tmp_path_factory.mktemp("run"))
            for path, value in values.items():
                OmegaConf.update(cfg, path, value, force_add=True, merge=False)
        try:
            validate_config(cfg)
        except ConfigError:
            outcomes.append("refused")
            return
        try:
            run(cfg)
            outcomes.append("completed")
        except Exception as e:
            assert user_error(e) is not None, f"{task} {values}: {type(e).__name__}: {e}"
            outcomes.append("user error")

    case()
    CASES["real runs"] = len(outcomes)
    assert "completed" in outcomes, outcomes


ANALYZE = [*SMALL[:1], "task=analyze", "prompts.limit=16", "analysis.sample.max_new_tokens=4", "knowledge.enabled=false",
           "report.print_top=false"]
ANALYZE_OPTIONS = {
    "analysis.sample.modes": st.lists(st.sampled_from(["plain_s", "plain_c", "amp_c", "amp_s"]), max_size=4),
    "analysis.sample.discovery_fraction": st.floats(0.0, 1.0),
    "analysis.hypothesise.max_hypotheses": st.integers(0, 5),
    "analysis.describe.n_clusters": st.integers(0, 5),
    "analysis.describe.min_count": st.integers(0, 3),
    "analysis.validate.test": st.sampled_from(["fisher", "ztest", "mcnemar", "chi2"]),
    "analysis.validate.min_texts": st.integers(0, 14),
    "analysis.validate.n_evidence": st.integers(-1, 3),
}


def test_accepted_analyses_run_to_the_end_or_stop_with_a_user_error(tmp_path_factory):
    """The analysis options on a real (tiny) pair: refused up front, or the analysis completes."""
    from cdx.run import run, user_error

    base = compose(ANALYZE)
    outcomes: list[str] = []

    @settings(derandomize=True, max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({}, optional=ANALYZE_OPTIONS))
    def case(values):
        cfg = copy.deepcopy(base)
        with open_dict(cfg):
            cfg.output_dir = str(tmp_path_factory.mktemp("analyze"))
            for path, value in values.items():
                OmegaConf.update(cfg, path, value, force_add=True, merge=False)
        try:
            validate_config(cfg)
        except ConfigError:
            outcomes.append("refused")
            return
        try:
            run(cfg)
            outcomes.append("completed")
        except Exception as e:
            assert user_error(e) is not None, f"{values}: {type(e).__name__}: {e}"
            outcomes.append("user error")

    case()
    CASES["real analyses"] = len(outcomes)
    assert "completed" in outcomes, outcomes
