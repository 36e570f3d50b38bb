"""One organism cache for the whole session: the tiny test base (tiny_english) is built once."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("organism_cache")
