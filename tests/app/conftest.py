"""The app tests' root: an empty folder standing for the directory `make app` is started in."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def app_root(tmp_path, monkeypatch) -> Path:
    """An empty app root ($CDX_APP_ROOT): runs live under <root>/outputs and <root>/multirun."""
    monkeypatch.setenv("CDX_APP_ROOT", str(tmp_path))
    return tmp_path
