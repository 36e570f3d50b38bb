"""Issue 23: an analysis resumes its samples by record id and refuses another batch_size.

A run killed while sampling, with a damaged middle line, resumes to the files of the
uninterrupted run (nothing lost, nothing doubled, the damaged line kept in `.corrupt`); a resume
with another batch_size, which would draw other samples, is refused and names the setting.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cdx.io import RunMismatchError, read_records
from cdx.tasks.analyze import run
from tests.conftest import ROOT, compose, patience

# Small batches, so each sample file spans several batches: discovery 6 prompts x 4 modes in 3
# batches of 8 records, validation 18 prompts x 2 modes in 5 batches of (up to) 8.
FAST = ["task=analyze", "model=tiny_random", "prompts.limit=24", "analysis.sample.max_new_tokens=6",
        "report.color=false", "analysis.sample.batch_size=2", "analysis.validate.sampling.batch_size=4"]
STAGE_OF = {"discovery": "sample", "validation": "validate"}
LATER = {"sample": ("clusters.json", "description.json", "hypotheses.jsonl", "validation.jsonl", "findings.jsonl",
                    "analysis.json", "analysis.html"),
         "validate": ("findings.jsonl", "analysis.json", "analysis.html")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("analyze") / "run"
    run(compose(FAST, output_dir=out))
    return out


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".cdx")}


def killed_while_drawing(src: Path, dst: Path, split: str) -> Path:
    """A copy of `src` as a kill while drawing `split` leaves it: that stage and the later ones not done."""
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cdx.lock*"))
    stages = json.loads((dst / "stages.json").read_text())
    order = list(stages)
    stages = {k: v for k, v in stages.items() if order.index(k) < order.index(STAGE_OF[split])}
    (dst / "stages.json").write_text(json.dumps(stages))
    for name in LATER[STAGE_OF[split]]:
        if name != f"{split}.jsonl":
            (dst / name).unlink(missing_ok=True)
    info = json.loads((dst / "run.json").read_text())
    (dst / "run.json").write_text(json.dumps({**info, "status": "running"}))
    return dst


def damage(path: Path, middle: int, keep: int) -> bytes:
    """Line `middle` garbled, only the first `keep` lines kept, then half a line (a kill mid-write)."""
    lines = path.read_bytes().split(b"\n")
    bad = lines[middle][:40] + b"\x00garbage"
    path.write_bytes(b"".join(line + b"\n" for line in [*lines[:middle], bad, *lines[middle + 1: keep]])
                     + lines[keep][:25])
    return bad


@pytest.mark.parametrize("split", ["discovery", "validation"])
def test_a_damaged_middle_line_and_a_cut_tail_resume_to_the_uninterrupted_samples(finished, tmp_path, split):
    out = killed_while_drawing(finished, tmp_path / "run", split)
    bad = damage(out / f"{split}.jsonl", middle=3, keep=12)  # batch 0 damaged, batch 1 complete, batch 2 cut
    run(compose([*FAST, "resume=true"], output_dir=out))
    # every id once, each drawn as the uninterrupted run drew it: the file is byte-identical
    assert (out / f"{split}.jsonl").read_bytes() == (finished / f"{split}.jsonl").read_bytes()
    assert (out / f"{split}.jsonl.corrupt").read_bytes() == bad + b"\n"  # the damaged line kept aside
    for name in ("validation.jsonl", "hypotheses.jsonl", "findings.jsonl"):
        assert read_records(out / name) == read_records(finished / name), name


def test_a_duplicated_sample_is_dropped_not_counted_twice(finished, tmp_path):
    out = killed_while_drawing(finished, tmp_path / "run", "validation")
    lines = (out / "validation.jsonl").read_bytes().split(b"\n")
    (out / "validation.jsonl").write_bytes(b"\n".join([*lines[:10], lines[4], *lines[10:]]))
    run(compose([*FAST, "resume=true"], output_dir=out))
    assert (out / "validation.jsonl").read_bytes() == (finished / "validation.jsonl").read_bytes()
    summary = json.loads((out / "analysis.json").read_text())
    assert summary["n_validation_texts_s"] == summary["n_validation_texts_c"] == 18


def test_resume_with_another_sampling_batch_size_is_refused_naming_it(finished, tmp_path):
    out = killed_while_drawing(finished, tmp_path / "run", "validation")
    before = files(out)
    with pytest.raises(RunMismatchError, match=r"analysis.validate.sampling.batch_size: 4 -> 3"):
        run(compose([*FAST, "resume=true", "analysis.validate.sampling.batch_size=3"], output_dir=out))
    with pytest.raises(RunMismatchError, match=r"analysis.sample.batch_size: 2 -> 8"):
        run(compose([*FAST, "resume=true", "analysis.sample.batch_size=8"], output_dir=out))
    assert files(out) == before


# A real kill -9 of the CLI at a fixed point: when validation batch 2 starts (batches 0 and 1 written).
KILLER = """
import os, runpy, signal
import cdx.analysis.pipeline as pipeline
real = pipeline.sample_batch
def sample_batch(decoder, prompts, ids, b, modes, split):
    if split == "validation" and b == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(decoder, prompts, ids, b, modes, split)
pipeline.sample_batch = sample_batch
runpy.run_module("cdx.run", run_name="__main__")
"""


def cli(tmp_path: Path, *args: str, killer: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    head = ["-c", KILLER] if killer else ["-m", "cdx.run"]
    return subprocess.run([sys.executable, *head, *FAST, "hydra.run.dir=run", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=patience(600))


@pytest.mark.slow
def test_kill_9_while_validating_then_resume_gives_the_uninterrupted_files(finished, tmp_path):
    killed = cli(tmp_path, killer=True)
    assert killed.returncode == -9, killed.stderr
    out = tmp_path / "run"
    assert len(read_records(out / "validation.jsonl")) == 16  # two batches of 4 prompts x 2 models
    assert json.loads((out / "run.json").read_text())["status"] == "running"
    other = cli(tmp_path, "resume=true", "analysis.validate.sampling.batch_size=3")
    assert other.returncode == 2 and "Traceback" not in other.stderr
    assert "analysis.validate.sampling.batch_size: 4 -> 3" in other.stderr.strip().splitlines()[-1]
    bad = damage(out / "validation.jsonl", middle=9, keep=16)  # batch 1 damaged too
    resumed = cli(tmp_path, "resume=true")
    assert resumed.returncode == 0, resumed.stderr
    for name in ("discovery.jsonl", "validation.jsonl"):
        assert (out / name).read_bytes() == (finished / name).read_bytes(), name
    assert (out / "validation.jsonl.corrupt").read_bytes() == bad + b"\n"
    assert read_records(out / "findings.jsonl") == read_records(finished / "findings.jsonl")
