"""docs/pipeline.md's Python example (a search, an analysis and an agent step) runs as written, without Hydra."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import patience

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "pipeline.md"
CHECK = """
import sys
from cdx.agent.agent import Decision
assert isinstance(decision, Decision), type(decision)
assert (out / "analyze" / "findings.jsonl").is_file() and result.n_hypotheses == len(findings)
assert searched.bank_size == len(bank) > len(instructions.seeds) and set(bank) <= set(prompts)
print("hydra imported:", any(m == "hydra" or m.startswith("hydra.") for m in sys.modules))
"""


def test_the_documented_loop_runs_without_hydra(tmp_path):
    code = re.search(r"<!-- library-example -->\n```python\n(.*?)```", DOC.read_text(), re.S)
    assert code, "docs/pipeline.md lost its library example"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code.group(1) + CHECK], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=patience(300))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\d+ prompts in the bank, top divergence [\d.]+", lines[-5]), lines[-5]
    assert re.fullmatch(r"\d+ hypotheses, \d+ validated", lines[-3])
    assert re.match(r"(confirm|narrow|split|reject|inconclusive) - ", lines[-2])  # the agent's decision and reason
    assert lines[-1] == "hydra imported: False"
