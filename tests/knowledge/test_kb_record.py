"""record_analysis: an analyze run folder's hypotheses become validations and findings; a rerun replicates."""

from __future__ import annotations

import pytest
import yaml

from cdx.errors import CdxUserError
from cdx.io import write_records
from cdx.io.records import FindingRecord
from cdx.knowledge import KnowledgeBase, hypothesis_key, record_analysis

PAIR = {"starting": {"path": "tiny-random", "seed": 0}, "comparison": {"path": "tiny-random", "seed": 1}}


def _rec(validated=True, statement="refuses more"):
    return {"id": "h0", "statement": statement, "kind": "refusal", "direction": "gained", "cluster": None,
            "checker": {"type": "feature", "name": "refusal"}, "n_s": 30, "k_s": 2, "n_c": 30, "k_c": 20 if validated else 3,
            "rate_s": 2 / 30, "rate_c": 2 / 3, "p": 1e-5, "q": 1e-5, "validated": validated,
            "evidence": [{"id": "p00001-s00", "model": "comparison", "prompt": "Bake?", "text": "I can't."}]}


def _run_dir(tmp_path, name, records):
    d = tmp_path / name
    write_records(d / "findings.jsonl", records)
    (d / ".hydra").mkdir()
    (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"model": PAIR, "output_dir": "${hydra:runtime.output_dir}"}))
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["task=analyze", "model=tiny_random"]))
    return d


def test_analyze_then_rerun_then_failed_rerun(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    first = record_analysis(_run_dir(tmp_path, "a1", [_rec()]), kb)
    assert (first.n_hypotheses, first.n_findings_new, first.finding_ids) == (1, 1, [1])
    # Reworded statement, same checker: the same claim, so a replication rather than a second finding.
    second = record_analysis(_run_dir(tmp_path, "a2", [_rec(statement="refuses requests more often")]), kb)
    assert (second.n_findings_new, second.n_replicated, second.pair_id) == (0, 1, first.pair_id)
    third = record_analysis(_run_dir(tmp_path, "a3", [_rec(validated=False)]), kb)
    assert third.n_not_replicated == 1
    f = kb.finding(1)
    assert [h.status for h in f.history] == ["validated", "replicated", "not_replicated"]
    assert [(h.run_dir or "").rsplit("/", 1)[-1] for h in f.history] == ["a1", "a2", "a3"]
    assert [v.purpose for v in f.validations] == ["discovery"] * 3
    assert len(f.evidence) == 2  # evidence of the two validating runs, none from the failed one
    run = kb.conn.execute("SELECT command, run_dir FROM runs WHERE id=?", (first.run_id,)).fetchone()
    assert run[0] == "python -m cdx.run task=analyze model=tiny_random" and run[1].endswith("a1")


def test_unvalidated_new_hypothesis_is_kept_but_no_finding(tmp_path):
    res = record_analysis([_rec(validated=False)], tmp_path / "kb.sqlite", model=PAIR)
    assert (res.n_hypotheses, res.finding_ids) == (1, [])
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        assert kb.counts()["validations"] == 1 and kb.counts()["findings"] == 0


def test_key_ignores_wording_but_not_the_claim():
    def key(**kw) -> str:
        return hypothesis_key(FindingRecord.model_validate({**_rec(), **kw}))

    assert key() == key(statement="other words")
    assert key() != key(cluster="cooking")
    assert key() != key(direction="lost")


def test_bad_inputs(tmp_path):
    with pytest.raises(CdxUserError, match="has no findings.jsonl"):
        record_analysis(tmp_path, tmp_path / "kb.sqlite")
    with pytest.raises(ValueError, match="needs the pair"):
        record_analysis([_rec()], tmp_path / "kb.sqlite")
    with pytest.raises(ValueError, match="lacks \\['checker'\\]"):
        record_analysis([{"statement": "x"}], tmp_path / "kb.sqlite", model=PAIR)


def test_settings_dict_as_task_analyze_passes_it(tmp_path):
    """What task=analyze calls: the conf/knowledge settings decide whether and where to record."""
    d = _run_dir(tmp_path, "a1", [_rec()])
    assert record_analysis(d, {"enabled": False, "path": str(tmp_path / "off.sqlite")}) is None
    assert not (tmp_path / "off.sqlite").exists()
    res = record_analysis(d, {"enabled": True, "path": str(tmp_path / "on.sqlite"), "busy_timeout_s": 5, "retries": 2})
    assert res.n_findings_new == 1
    with pytest.raises(ValueError, match="unknown knowledge option\\(s\\) \\['pth'\\]"):
        record_analysis(d, {"enabled": True, "pth": "x"})
