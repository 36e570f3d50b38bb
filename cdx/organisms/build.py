"""Build an organism once and cache it under `$CDX_CACHE_DIR/organisms/<name>-<spec hash>/`.

Like the GGUF cache: a file lock makes two processes that build the same spec at once build it
only once; the entry is written to a temporary folder and renamed into place, so a killed build
never leaves a half-written entry. Every entry holds `truth.json` (statement, kind, trigger, checker,
the model pair to compare, build cost) and, depending on the method, a PEFT adapter (lora,
zero_adapter), a full model directory (quantize) or nothing more (system_prompt, interpolate, copy).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from filelock import FileLock

from cdx.io import atomic_write_json, write_records
from cdx.models import ModelSpec, load_model
from cdx.models.gguf_cache import default_cache_dir
from cdx.models.pair import Side
from cdx.organisms.spec import OrganismSpec, load_spec

log = logging.getLogger(__name__)


def organisms_root(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or default_cache_dir()) / "organisms"


BASE_ORGANISM = "organism:"
"""`base: organism:<name>` plants on top of another organism built with params.merge (a full model)."""


def entry_dir(spec: OrganismSpec, cache_dir: str | Path | None = None) -> Path:
    return organisms_root(cache_dir) / f"{spec.name}-{full_hash(spec)}"


def full_hash(spec: OrganismSpec) -> str:
    """The spec's hash, chained with its base organism's (a changed base rebuilds what sits on it)."""
    if not spec.base.startswith(BASE_ORGANISM):
        return spec.spec_hash
    base = load_spec(spec.base[len(BASE_ORGANISM):])
    return hashlib.sha256(f"{spec.spec_hash}|{full_hash(base)}".encode()).hexdigest()[:16]


def base_path(spec: OrganismSpec, cache_dir: str | Path | None = None) -> str:
    """The base model's path: as given, or the (built) full-model directory of a base organism."""
    if not spec.base.startswith(BASE_ORGANISM):
        return spec.base
    base = load_spec(spec.base[len(BASE_ORGANISM):])
    if not base.params.get("merge"):
        raise ValueError(f"organism {spec.name!r} builds on {base.name!r}, which must set params.merge: true "
                         "(a full model directory, not an adapter)")
    return str(build_organism(base, cache_dir))


def build_organism(name: str | dict | OrganismSpec, cache_dir: str | Path | None = None) -> Path:
    """The organism's cache directory (built first if needed): adapter or model files plus truth.json."""
    spec = name if isinstance(name, OrganismSpec) else load_spec(name)
    target = entry_dir(spec, cache_dir)
    if (target / "truth.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / "truth.json").is_file():  # another process built it while we waited
            return target
        log.info("planting organism %s (once; cached at %s)", spec.name, target)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
        try:
            t0, c0 = time.perf_counter(), time.process_time()
            stats = _build(spec, tmp, target, cache_dir)
            stats.update(wall_s=round(time.perf_counter() - t0, 1), cpu_s=round(time.process_time() - c0, 1),
                         torch=torch.__version__, machine=platform.machine())
            atomic_write_json(tmp / "truth.json", truth_record(spec, target, cache_dir, stats))
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def base_spec(spec: OrganismSpec, cache_dir: str | Path | None = None) -> ModelSpec:
    return ModelSpec(path=base_path(spec, cache_dir), seed=spec.base_seed, name="base")


def base_side(spec: OrganismSpec, cache_dir: str | Path | None) -> Side:
    ms = base_spec(spec, cache_dir)
    model, tok = load_model(ms, None if cache_dir is None else str(cache_dir))
    return Side(ms, model, tok)


def _build(spec: OrganismSpec, tmp: Path, target: Path, cache_dir) -> dict:
    """Write the method's files into `tmp` (renamed to `target` afterwards); build statistics."""
    from cdx.organisms import train

    if spec.method in ("system_prompt", "copy"):
        return {}
    if spec.method == "interpolate":
        build_organism(_param(spec, "of"), cache_dir)  # the endpoint must exist first
        return {}
    side = base_side(spec, cache_dir)
    if spec.method == "zero_adapter":
        return train.zero_adapter(side, spec.train, tmp)
    if spec.method == "quantize":
        return _quantized_copy(spec, side, tmp)
    from cdx.organisms.data import training_pairs

    pairs = training_pairs(spec, side, organisms_root(cache_dir))
    write_records(tmp / "data.jsonl", pairs)
    return train.train_lora(side, pairs, spec.train, spec.seed, tmp, merge=bool(spec.params.get("merge")))


def _quantized_copy(spec: OrganismSpec, side: Side, out: Path) -> dict:
    import copy

    from cdx.organisms.quantize import quantize_model_

    model = copy.deepcopy(side.model)
    n = quantize_model_(model, int(_param(spec, "bits")))
    model.save_pretrained(str(out))
    side.tokenizer.save_pretrained(str(out))
    return {"quantized_matrices": n}


def _param(spec: OrganismSpec, key: str):
    if key not in spec.params:
        raise ValueError(f"organism {spec.name!r} (method {spec.method}) needs params.{key}")
    return spec.params[key]


def pair_of(spec: OrganismSpec, target: Path, cache_dir=None) -> dict:
    """The model pair (kwargs of cdx.models.load_pair) that shows this organism's change."""
    start = {"path": base_path(spec, cache_dir), "seed": spec.base_seed, "name": "base"}
    comp = dict(start, name=spec.name)
    lam = None
    if spec.method == "lora" and spec.params.get("merge"):
        comp = {"path": str(target), "name": spec.name}
    elif spec.method in ("lora", "zero_adapter"):
        comp["adapter"] = str(target)
    elif spec.method == "quantize":
        comp = {"path": str(target), "name": spec.name}
    elif spec.method == "system_prompt":
        comp["system_prompt"] = _param(spec, "system_prompt")
    elif spec.method == "interpolate":
        of = load_spec(_param(spec, "of"))
        comp["adapter"] = str(entry_dir(of, cache_dir))
        lam = float(_param(spec, "lam"))
    return {"starting": start, "comparison": comp, "interpolation": lam}


def truth_record(spec: OrganismSpec, target: Path, cache_dir, stats: dict) -> dict:
    return {
        "name": spec.name, "kind": spec.kind, "statement": spec.statement, "trigger": spec.trigger,
        "checker": spec.checker, "expected_findings": spec.expected_findings, "method": spec.method,
        "spec_hash": full_hash(spec), "pair": pair_of(spec, target, cache_dir), "build": stats,
        "spec": spec.to_dict(),
    }
