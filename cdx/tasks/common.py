"""What every task shares: output folder, run metadata, tracker lifetime, seeding, records."""

from __future__ import annotations

import contextlib
import logging
import shlex
import subprocess
from pathlib import Path
from typing import Any, cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cdx.assistant import Assistant, CachedAssistant
from cdx.io import strip_execution_only, texts_digest
from cdx.io.records import DecodeSummary

log = logging.getLogger(__name__)


def output_dir(cfg: DictConfig) -> Path:
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def git_commit() -> str | None:
    try:
        root = Path(__file__).resolve().parents[2]
        return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_meta(cfg: DictConfig, task: str) -> dict:
    """Task, Hydra choices and overrides (when run through Hydra), git commit."""
    meta: dict[str, Any] = {"task": task, "git_commit": git_commit(), "output_dir": str(cfg.output_dir)}
    with contextlib.suppress(ValueError, ImportError):
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        choices = cast(dict, OmegaConf.to_container(hc.runtime.choices))
        meta["choices"] = {k: v for k, v in choices.items() if not str(k).startswith("hydra/")}
        meta["overrides"] = list(hc.overrides.task)
        multirun = hc.mode is not None and hc.mode.name == "MULTIRUN"
        meta["sweep_dir"] = hc.sweep.dir if multirun else None
        meta["job_num"] = cast(DictConfig, hc.job).get("num") if multirun else None  # a DictConfig at run time
    return meta


def resume_command(cfg: DictConfig) -> str:
    """The command that continues this run in its folder: the overrides it was started with, and resume=true."""
    args = ["<the same overrides>"]
    with contextlib.suppress(ValueError, ImportError):
        from hydra.core.hydra_config import HydraConfig

        args = [a for a in HydraConfig.get().overrides.task if not a.startswith(("hydra.run.dir=", "resume="))]
    where = f"hydra.run.dir={shlex.quote(str(cfg.output_dir))}"
    return " ".join(["python -m cdx.run", *map(shlex.quote, args), where, "resume=true"])


def resolved_config(cfg: DictConfig) -> dict:
    return cast(dict, OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False))


def run_identity(cfg: DictConfig, kind: str, texts: list[str] | None = None, groups=("model", "decoding"),
                 **extra) -> dict:
    """The settings that decide a run's results (written to run.json; resume must match them).

    The task, seed, task options and the config `groups`, without execution-only settings
    (cdx.io.EXECUTION_ONLY: parallel, threads, ...); the input texts by count and sha256 (so the
    prompts file may move, but not change); `extra` as given (e.g. weights taken from a built rule).
    """
    c = resolved_config(cfg)
    ident = {"task": kind, "seed": c.get("seed"),
             "task_options": {k: v for k, v in (c.get("task") or {}).items() if k not in ("_target_", "name")}}
    ident.update({g: c.get(g) for g in groups})
    if texts is not None:
        ident["inputs"] = {"n": len(texts), "sha256": texts_digest(texts)}
    ident.update(extra)
    return strip_execution_only(ident)


def record_id(prompt_index: int, sample_index: int) -> str:
    """The id of a text record: `p00012-s01` (prompt 12, sample 1); resume finds done work by it."""
    return f"p{prompt_index:05d}-s{sample_index:02d}"


@contextlib.contextmanager
def tracked(cfg: DictConfig, task: str, config: dict | None = None, out: Path | None = None):
    """A started tracker (cfg.logger) that is always finished, also when the task fails.

    It logs `config` (default: cfg resolved) and keeps its files under `out` (default: cfg.output_dir):
    a run inside another task's (the benchmark's analysis) states what it ran with and where.
    """
    tracker = instantiate(cfg.logger) if cfg.get("logger") else None
    if tracker is None:
        from cdx.tracking.tracker import NullTracker

        tracker = NullTracker()
    meta = run_meta(cfg, task)
    if out is not None:
        meta["output_dir"] = str(out)
    tracker.start(resolved_config(cfg) if config is None else config, meta)
    failed = True
    try:
        yield tracker
        failed = False
    finally:
        tracker.finish(failed=failed)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_record(gen, tokenizer, meta: dict, stop_strings=()) -> dict:
    """A generation as one JSON-ready record (schema in README, 'Outputs')."""
    from cdx.metrics.text import text_metrics

    text = tokenizer.decode(gen.token_ids, skip_special_tokens=True)
    if gen.finish_reason == "stop":
        cut = [text.find(s) for s in stop_strings if s in text]
        text = text[: min(cut)] if cut else text
    rec = {
        "id": record_id(gen.prompt_index, gen.sample_index),
        "prompt_index": gen.prompt_index,
        "sample_index": gen.sample_index,
        "prompt": gen.prompt,
        "continuation": text,
        "token_ids": gen.token_ids,
        "token_strs": [tokenizer.decode([t]) for t in gen.token_ids],
        "tokens": gen.tokens,
        "metrics": text_metrics(gen.tokens),
        "finish_reason": gen.finish_reason,
    }
    if gen.beam_score is not None:
        rec["beam_score"] = gen.beam_score
    if gen.prefix_tokens:
        both = {k: gen.prefix_tokens[k] + gen.tokens[k] for k in gen.tokens}
        rec["prefix_tokens"] = gen.prefix_tokens
        rec["metrics_with_prefix"] = text_metrics(both)
    rec.update(gen.logprob_fields())  # log q and whole-text log-probs for importance weights (issue 19)
    rec.update(gen.top_next_fields(tokenizer))  # both models' top-k next tokens (decoding.record_top_k)
    rec.update(meta)
    return rec


def flat_metrics(summary: DecodeSummary) -> dict:
    """A flat dict of headline numbers (what run() returns, what sweeps and Optuna read)."""
    if not summary.n_tokens:
        return {"n_texts": summary.n_texts, "n_tokens": 0}
    out: dict = {f"{k}_mean": v.mean for k, v in summary.token.items()}
    out.update({f"{k}_q99": v.q99 for k, v in summary.token.items()})
    out.update({f"text_{k}_mean": v.mean for k, v in summary.text.items()})
    out.update(summary.model_dump(include={"n_texts", "n_tokens", "top1_agreement", "ppl_s", "ppl_c",
                                           "ppl_ratio_c_over_s"}))
    return out


def build_assistant(spec: DictConfig) -> Assistant:
    """The `_target_` of conf/assistant, wrapped in the on-disk cache unless `cache.enabled` is false."""
    d = cast(dict, OmegaConf.to_container(spec, resolve=True))
    cache = d.pop("cache", None) or {}
    inner = instantiate(d)
    if not cache.get("enabled", False):
        return inner
    return CachedAssistant(inner, cache_dir=cache.get("dir"), enabled=True)
