"""Search tests run on the tiny random pair with the scripted assistant (seconds, not minutes)."""

from __future__ import annotations

import pytest

from tests.conftest import compose

FAST = ["task=search", "model=tiny_random", "assistant=scripted", "search.max_new_tokens=6",
        "search.generations_per_prefix=2", "report.print_top=false"]


@pytest.fixture
def make_cfg(tmp_path):
    """make_cfg(*overrides, out=name): the composed search config writing to tmp_path/name."""

    def make(*overrides: str, out: str = "run"):
        return compose([*FAST, *overrides], tmp_path / out)

    return make
