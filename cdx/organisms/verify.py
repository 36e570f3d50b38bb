"""Does the planted behaviour show on held-out prompts? The checker's rate, base vs organism.

For each verification prompt set (held-out subjects, never trained on), both sides of the
organism's pair answer every prompt once (seeded sampling at the spec's temperature) and the
truth checker is applied to each answer. A conditional behaviour is verified by a high rate on
its trigger set and a low one elsewhere (e.g. refuse_cooking: cooking vs general prompts).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from cdx.analysis import build_checker
from cdx.io import atomic_write_json, write_records
from cdx.models import load_pair
from cdx.organisms.generate import sample_answers
from cdx.organisms.prompts import sample_prompts
from cdx.organisms.records import PlantedTruth
from cdx.organisms.spec import load_spec


def load_truth(entry: str | Path) -> PlantedTruth:
    """The organism entry's truth.json, validated."""
    path = Path(entry) / "truth.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {entry} is not a built organism (build_organism first)")
    return PlantedTruth.model_validate(json.loads(path.read_text()))


def verify_organism(entry: str | Path, cache_dir: str | Path | None = None, seed: int = 0) -> dict:
    """Checker rates per held-out set for both sides; written to <entry>/verify.json and returned."""
    entry = Path(entry)
    truth = load_truth(entry)
    spec = load_spec(truth.spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(spec.train.threads)  # the CPU is shared: as frugal as training
    try:
        return _verify(entry, truth, spec, cache_dir, seed)
    finally:
        torch.set_num_threads(threads)


def _verify(entry: Path, truth: PlantedTruth, spec, cache_dir, seed: int) -> dict:
    t0 = time.perf_counter()
    pair = load_pair(**truth.pair, cache_dir=cache_dir and str(cache_dir))
    checker = build_checker(truth.checker) if truth.checker else None
    v = spec.verify
    result: dict = {"organism": spec.name, "seed": seed, "sets": {}}
    samples = []
    for set_name, n in v.sets.items():
        prompts = sample_prompts(set_name, "heldout", n, seed)
        for label, side in (("base", pair.starting), ("organism", pair.comparison)):
            texts = sample_answers(side, prompts, v.max_new_tokens, v.temperature, seed, v.batch_size,
                                   desc=f"verify {spec.name} {set_name} {label}")
            hits = [bool(checker.check(t)) if checker else None for t in texts]
            samples += [{"set": set_name, "side": label, "prompt": p, "text": t, "hit": h}
                        for p, t, h in zip(prompts, texts, hits)]
            if checker:
                result["sets"].setdefault(set_name, {})[label] = sum(bool(h) for h in hits) / len(hits)
        if checker:
            result["sets"][set_name]["n"] = len(prompts)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    write_records(entry / "verify_samples.jsonl", samples)
    atomic_write_json(entry / "verify.json", result)
    return result
