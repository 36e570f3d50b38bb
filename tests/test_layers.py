"""The import contracts in pyproject.toml hold, and they can fail: an upward import planted in a copy is caught."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"]


def _lint(root: Path) -> subprocess.CompletedProcess:
    # cwd holds pyproject.toml; PYTHONPATH puts that root's cdx first (not the installed one).
    return subprocess.run([*LINT, "--no-cache"], cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def test_the_package_keeps_its_import_contracts():
    proc = _lint(ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "3 kept, 0 broken" in proc.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    shutil.copytree(ROOT / "cdx", tmp_path / "cdx", ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    metrics = tmp_path / "cdx" / "metrics" / "__init__.py"
    metrics.write_text(metrics.read_text() + "\n\ndef _late():\n    from cdx.decoding import engine  # noqa\n")
    proc = _lint(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "each cdx layer imports only the layers below it BROKEN" in proc.stdout
    assert "cdx.metrics -> cdx.decoding" in proc.stdout
