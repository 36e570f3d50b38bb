"""One organism cache for the whole session: the tiny test base (tiny_english) is built once."""

from __future__ import annotations

import pytest

from cdx.organisms.records import PlantedTruth


def planted_truth(**fields) -> PlantedTruth:
    """A truth.json record of a made-up lexical organism; `fields` replace its values."""
    truth = {"name": "brand", "kind": "lexical", "statement": "The model mentions the brand Zephyrix.",
             "trigger": None, "checker": {"type": "regex", "pattern": "zephyrix", "flags": "i"},
             "expected_findings": "behaviour", "method": "lora", "spec_hash": "0" * 16, "pair": {}, "build": {},
             "spec": {}}
    return PlantedTruth.model_validate({**truth, **fields})


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("organism_cache")
