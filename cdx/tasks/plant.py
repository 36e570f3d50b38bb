"""task=plant: build one model organism (cached) and verify its behaviour on held-out prompts.

    python -m cdx.run task=plant organism=refuse_cooking

Outputs (Hydra run dir): truth.json (copy of the cached entry's), verify.json, verify_samples.jsonl.
The organism itself lives in the cache ($CDX_CACHE_DIR/organisms/<name>-<spec hash>/), never here.
"""

from __future__ import annotations

import logging
import shutil
import time
from typing import cast

from omegaconf import DictConfig, OmegaConf

from cdx.io import atomic_write_json
from cdx.organisms import build_organism, load_spec, load_truth, verify_organism
from cdx.tasks.common import output_dir, tracked

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    if cfg.get("organism") is None:
        from cdx.organisms import available

        raise ValueError(f"task=plant needs organism=<name>; organisms: {available()}")
    spec = load_spec(cast(dict, OmegaConf.to_container(cfg.organism, resolve=True)))
    out = output_dir(cfg)
    cache_dir = cfg.task.get("cache_dir")
    with tracked(cfg, "plant") as tracker:
        t0 = time.perf_counter()
        entry = build_organism(spec, cache_dir)
        truth = load_truth(entry)
        atomic_write_json(out / "truth.json", truth.model_dump(exclude_unset=True))  # the keys it was read with
        metrics = {"organism": spec.name, "entry": str(entry), "build_cpu_s": truth.build.get("cpu_s")}
        if cfg.task.verify and truth.checker:  # pairs without a checker have no rate to verify
            result = verify_organism(entry, cache_dir, seed=int(cfg.seed))
            shutil.copy(entry / "verify.json", out / "verify.json")
            shutil.copy(entry / "verify_samples.jsonl", out / "verify_samples.jsonl")
            for set_name, r in result["sets"].items():
                metrics[f"rate_base_{set_name}"], metrics[f"rate_organism_{set_name}"] = r["base"], r["organism"]
        metrics["wall_s"] = round(time.perf_counter() - t0, 1)
        tracker.log_summary(metrics)
    rates = ", ".join(f"{k[len('rate_organism_'):]} {metrics['rate_base_' + k[len('rate_organism_'):]]:.2f}->{v:.2f}"
                      for k, v in metrics.items() if k.startswith("rate_organism_"))
    print(f"cdx plant: {spec.name} ({spec.kind}) at {entry}; checker rate base->organism: {rates or 'n/a'} -> {out}")
    hint = analyse_hint(truth.pair)
    if hint:
        print(f"cdx plant: analyse it with: python -m cdx.run task=analyze {hint}   (or task=pipeline)")
    return metrics


def analyse_hint(pair: dict) -> str | None:
    """The `model=` overrides that compare an adapter organism with its base, or None for other kinds."""
    start, comp = pair["starting"], pair["comparison"]
    if not comp.get("adapter") or comp["path"] != start["path"] or start["path"] == "tiny-random":
        return None  # (a tiny random base is defined by its seed, which the preset does not carry)
    base = "" if start["path"] == "embedded:smollm2-135m-instruct" else \
        f" model.starting.path={start['path']} model.comparison.path={start['path']}"
    return f"model=smollm2_lora{base} model.comparison.adapter={comp['adapter']}"
