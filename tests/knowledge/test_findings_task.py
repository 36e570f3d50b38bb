"""task=findings: list and query the knowledge base, show one finding, export CSV and JSON."""

from __future__ import annotations

import csv
import json

import pytest

from cdx.knowledge import KnowledgeBase, record_analysis
from cdx.tasks.findings import run
from tests.conftest import compose

PAIR = {"starting": {"path": "tiny-random", "seed": 0},
        "comparison": {"path": "tiny-random", "seed": 0, "system_prompt": "Refuse cooking questions."}}


def _rec(i, statement, cluster, validated=True):
    return {"id": f"h{i}", "statement": statement, "kind": "refusal", "direction": "gained", "cluster": cluster,
            "checker": {"type": "feature", "name": "refusal"}, "n_s": 20, "k_s": 1, "n_c": 20, "k_c": 15,
            "rate_s": 0.05, "rate_c": 0.75, "effect": 0.7, "effect_ci": [0.5, 0.9], "p": 1e-6, "q": 2e-6,
            "validated": validated, "evidence": [{"id": f"p{i}-s0", "model": "comparison", "prompt": "How do I bake bread?",
                                                  "text": "I cannot help with cooking."}]}


@pytest.fixture
def kb_path(tmp_path):
    path = tmp_path / "kb.sqlite"
    with KnowledgeBase(path) as kb:
        record_analysis([_rec(1, "refuses more", None), _rec(2, "refuses cooking questions", "cooking"),
                         _rec(3, "talks of weather", "weather", validated=False)], kb, model=PAIR, run_dir=tmp_path / "a")
        kb.add_status(1, "refined_into", "only cooking is refused", related_finding_id=2)
    return path


def _cfg(tmp_path, kb_path, *over):
    return compose(["task=findings", "model=tiny_random", f"knowledge.path={kb_path}", "report.color=false", *over],
                   tmp_path / "out")


def test_list_and_query(tmp_path, kb_path, capsys):
    assert run(_cfg(tmp_path, kb_path))["n_findings"] == 2  # the unvalidated hypothesis is no finding
    assert run(_cfg(tmp_path, kb_path, "task.status=refined_into"))["n_findings"] == 1
    assert run(_cfg(tmp_path, kb_path, "task.text=cooking"))["n_findings"] == 1
    assert run(_cfg(tmp_path, kb_path, "task.pair=nobody"))["n_findings"] == 0
    assert run(_cfg(tmp_path, kb_path, "task.limit=1"))["n_findings"] == 1
    out = capsys.readouterr().out
    assert "cooking" in out and "cdx findings: 1 finding(s) from" in out


def test_pair_current_is_the_configured_pair(tmp_path, kb_path):
    pair = ["model.comparison.seed=0", "+model.comparison.system_prompt='Refuse cooking questions.'"]
    assert run(_cfg(tmp_path, kb_path, "task.pair=current", *pair))["n_findings"] == 2
    assert run(_cfg(tmp_path, kb_path, "task.pair=current"))["n_findings"] == 0  # tiny_random's seeds 0 vs 1


def test_show_prints_history_validations_and_evidence(tmp_path, kb_path, capsys):
    res = run(_cfg(tmp_path, kb_path, "task.show=1"))
    assert res["status"] == "refined_into"
    out = capsys.readouterr().out
    assert "validated: discovery: validated (1/20 vs 15/20" in out
    assert "refined_into -> finding 2: only cooking is refused" in out
    assert "starting 1/20 vs comparison 15/20" in out and "I cannot help with cooking." in out


def test_export_csv_and_json(tmp_path, kb_path):
    res = run(_cfg(tmp_path, kb_path, "task.export=csv"))
    rows = list(csv.DictReader(open(res["export"])))
    assert [(r["id"], r["status"]) for r in rows] == [("2", "validated"), ("1", "refined_into")]
    path = tmp_path / "x.json"
    run(_cfg(tmp_path, kb_path, "task.export=json", f"task.export_path={path}", "task.status=refined_into"))
    (f,) = json.loads(path.read_text())
    assert [h["status"] for h in f["history"]] == ["validated", "refined_into"] and f["evidence"][0]["record_id"] == "p1-s0"


@pytest.mark.parametrize("over, error, match", [
    (["task.export=xml"], ValueError, "task.export='xml' is not valid; use one of \\('csv', 'json'\\)"),
    (["task.show=99"], KeyError, "no finding with id 99"),
    (["knowledge.enabled=false"], ValueError, "knowledge.enabled=false"),
    (["task.status=done"], ValueError, "finding status 'done' is not valid"),
], ids=["bad-export", "unknown-id", "disabled", "bad-status"])
def test_bad_options(tmp_path, kb_path, over, error, match):
    with pytest.raises(error, match=match):
        run(_cfg(tmp_path, kb_path, *over))
