"""One check per config group: `check_<group>(cfg, problems)` appends one line per bad value."""

from __future__ import annotations

import os
from pathlib import Path
from typing import cast

from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel

from cdx.config import schemas as S
from cdx.config.checks import (
    HYDRA_KEYS,
    PROMPT_SOURCES,
    Problems,
    check_keys,
    check_schema,
    container,
    local_path_missing,
    locate,
    missing,
    port_refuses,
)
from cdx.errors import CdxUserError


def check_top_level(cfg: DictConfig, problems: Problems) -> None:
    known = {k: cfg.get(k) for k in ("seed", "resume", "optimized_metric") if k in cfg}
    check_schema(S.TopLevelSchema, known, "config", problems)
    for p in list(problems):
        if p.startswith("config."):  # top-level keys are named without a prefix
            problems[problems.index(p)] = p.removeprefix("config.")


def check_runtime(cfg: DictConfig, problems: Problems) -> None:
    """`runtime.threads` / `runtime.jobs`: 'auto' or an integer >= 1 (cdx.runtime owns the options)."""
    from cdx.runtime import RuntimeSettings

    block = container(cfg, "runtime", problems) if "runtime" in cfg else None
    if block is not None:
        check_schema(RuntimeSettings, block, "runtime", problems)


# ---- task ------------------------------------------------------------------------------------------


def check_task(cfg: DictConfig, problems: Problems) -> None:
    task = container(cfg, "task", problems)
    if task is None:
        return
    name = task.get("name")
    schema = S.TASK_SCHEMAS.get(name) if isinstance(name, str) else None
    valid = check_schema(schema, task, "task", problems, what=f"task={name}") if schema is not None else True
    if name == "score" and (type(task.get("batch_size")) is not int or task["batch_size"] < 1):
        problems.append(f"task.batch_size={task.get('batch_size')!r} is not valid: must be an integer >= 1")
    if name == "benchmark":
        _check_benchmark(cfg, task, valid, problems)
    if name == "summarize":
        sweep_dir = None if "sweep_dir" not in cfg or OmegaConf.is_missing(cfg, "sweep_dir") else cfg.sweep_dir
        if sweep_dir is None:
            problems.append("sweep_dir is required but not set (???): give sweep_dir=<the hydra.sweep.dir of a multirun>")
        elif not isinstance(sweep_dir, str) or not sweep_dir.strip() or not _is_dir(sweep_dir):
            problems.append(f"sweep_dir={_repr(sweep_dir)} is not a folder: give the hydra.sweep.dir of a multirun")


def _is_dir(path: str) -> bool:
    """Path(path).is_dir(), False for a name the OS refuses (a NUL byte, a name too long)."""
    try:
        return Path(path).expanduser().is_dir()
    except (OSError, ValueError):
        return False


def _repr(value) -> str:
    """repr(value), cut to 200 characters (a fuzzed megabyte string stays one readable line)."""
    text = repr(value)
    return text if len(text) <= 200 else text[:150] + f"... ({len(text)} characters)"


def _check_benchmark(cfg: DictConfig, task: dict, valid: bool, problems: Problems) -> None:
    """The scoring options; with task.judge=true the assistant that grades is checked as for task=search."""
    from cdx.organisms.judge import RubricSettings
    from cdx.organisms.scoring import MatchRule

    for key, target in (("match", MatchRule), ("rubric", RubricSettings)):
        if isinstance(task.get(key), dict):
            check_keys(target, task[key], f"task.{key}", problems)
    if not valid or not task.get("judge"):
        return
    if cfg.get("assistant") is None:
        problems.append("task.judge=true grades findings with the run's assistant, and none is configured: "
                        "add assistant=openai (or assistant=local), or set task.judge=false")
        return
    check_assistant(cfg, problems)


# ---- model pair --------------------------------------------------------------------------------------


def check_model(cfg: DictConfig, problems: Problems) -> None:
    if missing(cfg, "model", problems):
        return
    model = container(cfg, "model", problems)
    if model is None or model.get("_target_") not in ("cdx.models.load_pair", "cdx.models.pair.load_pair"):
        return  # another loader: its own checks apply
    from cdx.models import load_pair
    from cdx.models.spec import ModelSpec

    check_keys(load_pair, model, "model", problems)
    if not check_schema(S.ModelPairSchema, model, "model", problems):
        return
    for side in ("starting", "comparison"):
        spec = model[side]
        where = f"model.{side}"
        check_keys(ModelSpec, spec, where, problems)
        try:
            ModelSpec(**spec)
        except TypeError:
            continue  # an unknown key: reported by check_keys
        except ValueError as e:
            problems.append(f"{where}: {e}")
            continue
        _check_side(spec, where, model.get("interpolation"), problems)


def _check_side(spec: dict, where: str, interpolation, problems: Problems) -> None:
    import torch

    path, quant = spec["path"], spec.get("quantization")
    if local_path_missing(path):
        problems.append(f"{where}.path={path!r} does not exist: give a local model folder, a hub id "
                        "or embedded:smollm2-135m-instruct")
    if path.startswith("embedded:"):
        from cdx.models.embedded import EMBEDDED

        if path.split(":", 1)[1] not in EMBEDDED:
            problems.append(f"{where}.path={path!r} is not an embedded model; use one of "
                            f"{[f'embedded:{n}' for n in sorted(EMBEDDED)]}")
    adapter = spec.get("adapter")
    if adapter and local_path_missing(adapter):
        problems.append(f"{where}.adapter={adapter!r} does not exist: give a PEFT adapter folder or a hub id")
    device = str(spec.get("device") or "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        problems.append(f"{where}.device={device!r} but no CUDA GPU is visible here: use device=cpu")
    if quant is None:
        return
    why = _unquantizable(path, device, spec.get("device_map"), interpolation, torch.cuda.is_available())
    if why:
        problems.append(f"{where}.quantization={quant!r} cannot be used: {why}")


def _unquantizable(path: str, device: str, device_map, interpolation, cuda: bool) -> str | None:
    if path == "tiny-random":
        return "tiny-random models are built in memory in full precision and are never quantized; set quantization=null"
    if not cuda:
        return "bitsandbytes quantization needs a CUDA GPU and none is visible here; set quantization=null"
    if device_map is None and not device.startswith("cuda"):
        return f"bitsandbytes runs on CUDA only, not device={device!r}; set device=cuda or device_map=auto"
    if interpolation is not None:
        return "interpolation needs floating-point weights; set quantization=null or model.interpolation=null"
    return None


# ---- decoding ----------------------------------------------------------------------------------------


def check_decoding(cfg: DictConfig, problems: Problems) -> None:
    if missing(cfg, "decoding", problems):
        return
    dec = container(cfg, "decoding", problems)
    if dec is None or dec.get("_target_") not in ("cdx.decoding.ContrastiveDecoder",
                                                 "cdx.decoding.engine.ContrastiveDecoder"):
        return
    dec = {**dec, **_search_overrides(cfg)}
    options = {k: v for k, v in dec.items() if k not in ("rule", "pair", "adapter_batch", *HYDRA_KEYS)}
    check_schema(S.DecodingSchema, options, "decoding", problems, what="ContrastiveDecoder")
    if dec.get("strategy") == "greedy" and dec.get("temperature", 1.0) != 1.0:
        problems.warnings.append(f"decoding.temperature={dec['temperature']} does nothing with strategy=greedy")
    rule = dec.get("rule")
    if isinstance(rule, dict) and rule.get("_target_") in S.RULE_SCHEMAS:
        target = locate(rule["_target_"], "decoding.rule", problems)
        if target is not None:
            check_keys(target, rule, "decoding.rule", problems)
        if check_schema(S.RULE_SCHEMAS[rule["_target_"]], rule, "decoding.rule", problems):
            if rule.get("plausibility_beta") == 1:
                problems.warnings.append("decoding.rule.plausibility_beta=1 keeps only the amplified side's top token: "
                                         "that is greedy decoding of that model")


def _search_overrides(cfg: DictConfig) -> dict:
    """task=search replaces the decoder's generations_per_prefix and max_new_tokens by its own."""
    if cfg.get("task") is None or cfg.task.get("name") != "search" or not isinstance(cfg.get("search"), DictConfig):
        return {}
    return {k: cfg.search.get(k) for k in ("generations_per_prefix", "max_new_tokens") if cfg.search.get(k) is not None}


# ---- prompts -----------------------------------------------------------------------------------------


SPLITTING_TASKS = ("analyze", "benchmark")  # tasks that split the prompts into discovery and held-out sets


def check_prompts(cfg: DictConfig, problems: Problems) -> None:
    """Build the prompt source and read its prompts now: a bad file fails before any model loads."""
    if missing(cfg, "prompts", problems):
        return
    src = container(cfg, "prompts", problems)
    if src is None or not str(src.get("_target_", "")).startswith(PROMPT_SOURCES):
        return
    target = locate(src["_target_"], "prompts", problems)
    if target is None:
        return
    task = str(OmegaConf.select(cfg, "task.name", default="") or "")
    if task in SPLITTING_TASKS and src["_target_"].endswith(".SinglePrompt"):
        problems.append(f"prompts=single does not fit task={task}: it splits the prompts into discovery and held-out "
                        "sets, so it needs a prompt set (prompts=builtin, or prompts=file prompts.path=...)")
        return
    n = len(problems)
    check_keys(target, src, "prompts", problems)
    if len(problems) > n:
        return
    try:
        target(**{k: v for k, v in src.items() if not k.startswith("_")}).load()
    except CdxUserError as e:
        problems.append(str(e))


# ---- report ------------------------------------------------------------------------------------------


def text_metric_names() -> list[str]:
    """Per-text metrics that can rank texts (what cdx.metrics.text.text_metrics returns)."""
    from cdx.decoding.engine import TOKEN_KEYS
    from cdx.metrics.text import text_metrics

    return sorted(text_metrics({k: [0.5, 0.25] for k in TOKEN_KEYS}))


def sort_key_names() -> list[str]:
    """What report.sort_key accepts: a per-text metric, or the summary's automatic choice (`auto`)."""
    from cdx.metrics import summary

    auto = getattr(summary, "AUTO", None)
    return ([auto] if auto else []) + text_metric_names()


def token_metric_names() -> list[str]:
    from cdx.decoding.engine import TOKEN_KEYS

    return list(TOKEN_KEYS)


def check_report(cfg: DictConfig, problems: Problems) -> None:
    rep = container(cfg, "report", problems)
    if rep is None:
        return
    if not check_schema(S.ReportSchema, rep, "report", problems):
        return
    texts, tokens = sort_key_names(), token_metric_names()
    if rep.get("sort_key", "kl_sc_mean") not in texts:
        problems.append(f"report.sort_key={rep['sort_key']!r} is not a per-text metric; use one of {texts}")
    if rep.get("token_metric", "kl_sc") not in tokens:
        problems.append(f"report.token_metric={rep['token_metric']!r} is not a per-token metric; use one of {tokens}")


# ---- search and assistant ----------------------------------------------------------------------------


def check_search(cfg: DictConfig, problems: Problems) -> None:
    from cdx.search import SearchSettings, load_instructions

    search = container(cfg, "search", problems)
    if search is None:
        return
    embedder = search.get("embedder")
    if isinstance(embedder, dict) and embedder.get("_target_") in S.ANALYSIS_STAGES["embedder"][0]:
        check_schema(S.EmbedderSchema, {k: v for k, v in embedder.items() if k not in HYDRA_KEYS}, "search.embedder",
                     problems)
    if not check_schema(S.SearchTypes, {k: v for k, v in search.items() if k != "embedder"}, "search", problems):
        return  # SearchSettings compares and builds with these values: wrong types would fail there unnamed
    try:
        settings = SearchSettings.from_dict(search)
    except (TypeError, ValueError) as e:
        problems.append(str(e))
        return
    for name in ("generations_per_prefix", "max_new_tokens"):
        v = getattr(settings, name)
        if v is not None and (not isinstance(v, int) or v < 1):
            problems.append(f"search.{name}={v!r} is not valid: must be an integer >= 1 (or null for the decoding's)")
    if settings.metric not in text_metric_names():
        problems.append(f"search.metric={settings.metric!r} is not a per-text metric; use one of {text_metric_names()}")
    try:
        load_instructions(settings.instructions)
    except (OSError, ValueError) as e:
        problems.append(f"search.instructions={settings.instructions!r}: {e}")
    if settings.seeds == "bank":
        bank = Path(str(settings.seed_bank)).expanduser()
        bank = bank / "bank.jsonl" if bank.is_dir() else bank
        if not bank.is_file():
            problems.append(f"search.seed_bank={settings.seed_bank!r} holds no bank.jsonl: give an earlier search's "
                            "output folder or its bank.jsonl")


def check_assistant(cfg: DictConfig, problems: Problems) -> None:
    if missing(cfg, "assistant", problems):
        return
    spec = container(cfg, "assistant", problems)
    if spec is None or spec.get("_target_") not in S.ASSISTANT_SCHEMAS:
        return
    target = locate(spec["_target_"], "assistant", problems)
    if target is not None:
        check_keys(target, spec, "assistant", problems, extra={"cache"})
    if not check_schema(S.ASSISTANT_SCHEMAS[spec["_target_"]], spec, "assistant", problems):
        return
    if spec["_target_"].endswith("OpenAIAssistant"):
        _check_endpoint(spec, problems)
    elif spec["_target_"].endswith("LocalAssistant") and local_path_missing(spec["model_path"]):
        problems.append(f"assistant.model_path={spec['model_path']!r} does not exist")


def _check_endpoint(spec: dict, problems: Problems) -> None:
    env = spec.get("api_key_env")
    if env and not os.environ.get(env):
        problems.append(f"assistant.api_key_env={env!r}: the environment variable {env} is not set; export {env}=... "
                        "or set assistant.api_key_env=null for a server without authentication")
    url = spec.get("base_url")
    if url:
        why = port_refuses(url, timeout=min(float(spec.get("timeout", 5.0)), 5.0))
        if why:
            problems.append(f"assistant.base_url={url!r} cannot be reached ({why}): is the server running at that "
                            "URL? Start it, or fix assistant.base_url")


# ---- analysis (task=analyze, and inside pipeline and benchmark) ---------------------------------------

ANALYSIS_TARGETS = ("cdx.analysis.Analysis", "cdx.analysis.pipeline.Analysis")


def check_analysis(cfg: DictConfig, problems: Problems) -> None:
    """Every stage's options; settings under which discovery cannot find anything are refused."""
    if missing(cfg, "analysis", problems):
        return
    analysis = _analysis_with_budget(cfg, problems)
    if analysis is None:
        return
    n = len(problems)
    _check_analysis(cfg, analysis, problems)
    if len(problems) == n and _task(cfg) == "analyze":
        _check_held_out(cfg, analysis, problems)
    budget = OmegaConf.select(cfg, "task.budget", default=None) if _task(cfg) == "benchmark" else None
    if isinstance(budget, DictConfig):  # a value the benchmark's budget set is named where the user wrote it
        paths = set(_leaf_paths(OmegaConf.to_container(budget, resolve=False)))
        problems[n:] = [_budget_name(line, paths) for line in problems[n:]]


def _check_held_out(cfg: DictConfig, analysis: dict, problems: Problems) -> None:
    """Enough prompts to split, and enough held-out texts for a hypothesis to be testable at all: with
    fewer than `min_texts` every hypothesis is untestable and the run can only say "no difference"."""
    prompts = _prompts(cfg)
    if prompts is None:
        return  # the prompts check names what is wrong with the source
    n = len(dict.fromkeys(prompts))  # task=analyze drops repeated prompts (one in both splits would leak)
    if n < 4:
        problems.append(f"task=analyze splits the prompts into discovery and held-out sets and needs >= 4 distinct "
                        f"prompts; prompts gives {n}: give more (prompts.limit, prompts.path)")
        return
    sample, validate = analysis["sample"], analysis["validate"]
    k = min(max(1, round(sample.get("discovery_fraction", 0.25) * n)), n - 1)  # cdx.analysis.sampling.split_prompts
    per = validate.get("sampling", {}).get("samples_per_prompt", 1)
    held_out, need = (n - k) * per, validate.get("min_texts", 10)
    if held_out < need:
        problems.append(
            f"analysis.validate.min_texts={need} exceeds the {held_out} held-out texts per model ({n - k} of {n} "
            f"prompts x {per} sample(s)): every hypothesis would be untestable and the run could only report no "
            "difference; give more prompts, lower analysis.sample.discovery_fraction or min_texts, or raise "
            "analysis.validate.sampling.samples_per_prompt")


def _prompts(cfg: DictConfig) -> list[str] | None:
    src = cast(dict, OmegaConf.to_container(cfg.prompts, resolve=True)) if isinstance(cfg.get("prompts"), DictConfig) \
        else None
    if not src or not str(src.get("_target_", "")).startswith(PROMPT_SOURCES):
        return None
    from hydra.utils import get_object

    try:
        return get_object(src["_target_"])(**{k: v for k, v in src.items() if not k.startswith("_")}).load()
    except Exception:  # noqa: BLE001 - any failure here is reported by check_prompts, naming the option
        return None


def _leaf_paths(data, prefix: str = "") -> list[str]:
    if isinstance(data, dict) and data:
        return [p for k, v in data.items() for p in _leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))]
    return [prefix]


def _budget_name(line: str, paths: set[str]) -> str:
    """`analysis.sample.x=...` -> `task.budget.sample.x=...` when task.budget set sample.x."""
    head = line.removeprefix("analysis.").split("=")[0].split(" ")[0].rstrip(":")
    if line.startswith("analysis.") and any(head == p or head.startswith(p + ".") for p in paths):
        return "task.budget." + line.removeprefix("analysis.")
    return line


def _check_analysis(cfg: DictConfig, analysis: dict, problems: Problems) -> None:
    if analysis.get("_target_") not in ANALYSIS_TARGETS:
        _locate_target(analysis, "analysis", problems)
        return
    from cdx.analysis import Analysis

    check_keys(Analysis, analysis, "analysis", problems)
    for key, (targets, schema) in S.ANALYSIS_STAGES.items():
        node, where = analysis.get(key), f"analysis.{key}"
        if node is None and key == "embedder":
            continue  # no embedder: clusters and themes fall back (cdx.analysis.describe)
        if not isinstance(node, dict):
            problems.append(f"{where}={_repr(node)} is not valid: give the stage's options with its _target_ "
                            f"({targets[0]})")
        elif node.get("_target_") in targets:
            check_schema(schema, {k: v for k, v in node.items() if k not in HYDRA_KEYS}, where, problems)
        else:
            _locate_target(node, where, problems)
    _check_analysis_assistant(cfg, analysis, problems)


def _analysis_with_budget(cfg: DictConfig, problems: Problems) -> dict | None:
    """cfg.analysis as a dict; for task=benchmark with its `task.budget` merged in, as the benchmark does."""
    if cfg.get("analysis") is None:
        task = OmegaConf.select(cfg, "task.name", default=None)
        problems.append(f"analysis is not set, and task={task} runs the analysis: choose analysis=default")
        return None
    analysis = container(cfg, "analysis", problems)
    budget = OmegaConf.select(cfg, "task.budget", default=None) if _task(cfg) == "benchmark" else None
    if analysis is None or budget is None:
        return analysis
    if not isinstance(budget, DictConfig):
        problems.append(f"task.budget={_repr(budget)} is not valid: must be a mapping merged into `analysis` "
                        "(e.g. {sample: {max_new_tokens: 32}})")
        return None
    try:
        merged = OmegaConf.merge(cfg.analysis, budget)
        return cast(dict, OmegaConf.to_container(merged, resolve=True, throw_on_missing=False))
    except Exception as e:  # noqa: BLE001 - a budget that does not fit the analysis' structure is the user's
        problems.append(f"task.budget cannot be merged into analysis ({type(e).__name__}: {str(e).splitlines()[0]})")
        return None


def _check_analysis_assistant(cfg: DictConfig, analysis: dict, problems: Problems) -> None:
    uses = [f"analysis.{stage}.{key}=true" for stage, key in (("hypothesise", "use_assistant"), ("validate", "judge"))
            if isinstance(analysis.get(stage), dict) and analysis[stage].get(key) is True]
    if not uses:
        return
    if cfg.get("assistant") is None:
        problems.append(f"{' and '.join(uses)} ask the configured assistant, and none is configured: add "
                        "assistant=openai (or assistant=local), or set them to false")
    elif _task(cfg) != "search":
        check_assistant(cfg, problems)


def _locate_target(node: dict, where: str, problems: Problems) -> None:
    target = node.get("_target_")
    if not isinstance(target, str) or not target:
        problems.append(f"{where}._target_={_repr(target)} is not valid: give the class to build (a dotted path)")
    else:
        locate(target, where, problems)


def _task(cfg: DictConfig) -> str | None:
    name = OmegaConf.select(cfg, "task.name", default=None, throw_on_resolution_failure=False)
    return name if isinstance(name, str) else None


# ---- agent, knowledge, logger, organism ---------------------------------------------------------------

AGENT_PARTS: dict[str, tuple[tuple[str, str], type[BaseModel]]] = {
    "settings": (("cdx.agent.AgentSettings", "cdx.agent.agent.AgentSettings"), S.AgentSettingsSchema),
    "sampler": (("cdx.agent.PairSampler", "cdx.agent.sampler.PairSampler"), S.PairSamplerSchema)}


def check_agent(cfg: DictConfig, problems: Problems) -> None:
    """The experiment agent of task=pipeline (conf/agent)."""
    agent = container(cfg, "agent", problems)
    if agent is None:
        problems.append("agent is not set, and task=pipeline runs the experiment agent: choose agent=default")
        return
    for key in sorted(set(agent) - {"settings", "sampler", "assistant_prompts"}):
        problems.append(f"agent.{key} is not an option of agent; options: ['assistant_prompts', 'sampler', 'settings']")
    n = agent.get("assistant_prompts", 0)
    if type(n) is not int or n < 0:
        problems.append(f"agent.assistant_prompts={_repr(n)} is not valid: must be an integer >= 0 (0: no assistant)")
    for key, (targets, schema) in AGENT_PARTS.items():
        node, where = agent.get(key), f"agent.{key}"
        if not isinstance(node, dict):
            problems.append(f"{where}={_repr(node)} is not valid: give its options with its _target_ ({targets[0]})")
        elif node.get("_target_") in targets:
            check_schema(schema, {k: v for k, v in node.items() if k not in HYDRA_KEYS}, where, problems)
        else:
            _locate_target(node, where, problems)


def check_knowledge(cfg: DictConfig, problems: Problems) -> None:
    """conf/knowledge: its options (the file itself is checked when the knowledge base opens it)."""
    kb = container(cfg, "knowledge", problems)
    task = _task(cfg)
    if kb is None:
        if task == "findings" and cfg.get("knowledge") is None:
            problems.append("task=findings reads the knowledge base, and knowledge is not set: choose knowledge=default")
        return
    if not check_schema(S.KnowledgeSchema, kb, "knowledge", problems):
        return
    if task == "findings" and kb.get("enabled") is False:
        problems.append("task=findings reads the knowledge base, but knowledge.enabled=false; set knowledge.enabled=true")
    # knowledge.path itself (a folder, another program's file, unwritable) is checked by cdx.knowledge.check_path,
    # only for the tasks that open it: one owner, one line per problem.


WANDB_TARGETS = ("cdx.tracking.wandb_tracker.WandbTracker", "cdx.tracking.WandbTracker")


def check_logger(cfg: DictConfig, problems: Problems) -> None:
    logger = container(cfg, "logger", problems)
    if logger is None:
        return
    target = logger.get("_target_")
    if target in WANDB_TARGETS:
        if check_schema(S.WandbSchema, {k: v for k, v in logger.items() if k not in HYDRA_KEYS}, "logger", problems):
            tokens = token_metric_names()
            if logger.get("token_metric", "kl_sc") not in tokens:
                problems.append(f"logger.token_metric={logger['token_metric']!r} is not a per-token metric; "
                                f"use one of {tokens}")
        return
    if not isinstance(target, str) or not target:
        _locate_target(logger, "logger", problems)
        return
    obj = locate(target, "logger", problems)
    if obj is not None and target.startswith("cdx."):
        check_keys(obj, logger, "logger", problems)


def check_organism(cfg: DictConfig, problems: Problems) -> None:
    """The organism of task=plant and task=benchmark: a complete spec with a checker that builds."""
    task = _task(cfg)
    if task == "benchmark" and OmegaConf.select(cfg, "task.collect", default=None):
        return  # only collects finished jobs' records
    if cfg.get("organism") is None:
        return  # the task says at once that it needs one, naming the organisms (before any work)
    spec = container(cfg, "organism", problems)
    if spec is None or not check_schema(S.OrganismSchema, {k: v for k, v in spec.items() if k not in HYDRA_KEYS},
                                        "organism", problems):
        return
    from cdx.organisms import load_spec

    try:
        organism = load_spec(spec)
    except (TypeError, ValueError) as e:
        problems.append(f"organism: {e}")
        return
    if organism.checker:
        from cdx.analysis import build_checker

        try:
            build_checker(organism.checker)
        except (TypeError, ValueError, KeyError) as e:
            problems.append(f"organism.checker={_repr(organism.checker)} is not valid: {e}")
