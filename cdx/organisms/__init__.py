"""Model organisms: behaviours planted with known truth, to measure whether cdx recovers them.

    build_organism(name, cache_dir=None) -> Path     the cached entry (PEFT adapter + truth.json)
    load_truth(entry) -> PlantedTruth               statement, kind, trigger, checker, pair, build cost
    verify_organism(entry) -> dict                  checker rates base vs organism on held-out prompts
    organism_pair(name) -> dict                     load_pair kwargs for the organism's model pair
    load_spec(name) / available()                   the specs in conf/organism/

Specs: conf/organism/<name>.yaml; recipe: cdx.organisms.{prompts, rules, data, train, quantize}.
"""

from pathlib import Path

from cdx.organisms.build import build_organism, entry_dir, organisms_root
from cdx.organisms.spec import OrganismSpec, available, load_spec
from cdx.organisms.verify import load_truth, verify_organism


def organism_pair(name: str, cache_dir: str | Path | None = None) -> dict:
    """kwargs of `cdx.models.load_pair` comparing the base with organism `name` (built if needed)."""
    return load_truth(build_organism(name, cache_dir)).pair


__all__ = ["OrganismSpec", "available", "build_organism", "entry_dir", "load_spec", "load_truth",
           "organism_pair", "organisms_root", "verify_organism"]
