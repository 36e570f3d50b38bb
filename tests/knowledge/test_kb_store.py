"""Knowledge-base writes and queries: findings, status history, evidence, validations, bad inputs."""

from __future__ import annotations

import pytest

from cdx.io.records import Evidence, FindingRecord
from cdx.knowledge import KnowledgeBase

RESULT = FindingRecord.model_validate({
    "id": "h1", "statement": "refuses more", "n_s": 40, "k_s": 2, "n_c": 40, "k_c": 30, "rate_s": 0.05, "rate_c": 0.75,
    "rate_s_ci": [0.01, 0.17], "rate_c_ci": [0.6, 0.86], "effect": 0.7, "effect_ci": [0.55, 0.85], "p": 1e-10,
    "q": 2e-10, "validated": True, "alpha": 0.05})


@pytest.fixture
def kb(tmp_path):
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        yield kb


def _finding(kb, statement="refuses more", pair_fp="fp-a", key=None, cluster=None) -> tuple[int, int, int]:
    pid = kb.upsert_pair(pair_fp, f"label {pair_fp}", {"x": pair_fp})
    hid = kb.upsert_hypothesis(pid, key or statement, statement, "refusal", "gained", cluster, {"type": "feature", "name": "refusal"})
    vid = kb.add_validation(hid, RESULT, "discovery")
    return pid, hid, kb.add_finding(hid, "found", validation_id=vid, evidence=[Evidence(id="r1", model="comparison",
                                                                                       prompt="Bake bread?", text="I can't.")])


def test_same_pair_and_claim_are_one_row(kb):
    assert kb.upsert_pair("fp", "a vs b", {}) == kb.upsert_pair("fp", "other label", {})
    pid = kb.upsert_pair("fp", "a vs b", {})
    assert kb.upsert_hypothesis(pid, "k", "s1") == kb.upsert_hypothesis(pid, "k", "s1 reworded")
    assert kb.counts()["pairs"] == 1 and kb.counts()["hypotheses"] == 1


def test_validation_stores_counts_rates_cis_and_details(kb):
    _, hid, fid = _finding(kb)
    (v,) = kb.finding(fid).validations
    assert (v.n_s, v.k_s, v.n_c, v.k_c, v.validated, v.purpose) == (40, 2, 40, 30, True, "discovery")
    assert (v.rate_s_ci_low, v.rate_s_ci_high, v.effect_ci_low, v.effect_ci_high) == (0.01, 0.17, 0.55, 0.85)
    assert (v.p, v.q) == (1e-10, 2e-10) and '"alpha": 0.05' in (v.details or "")
    assert kb.conn.execute("SELECT validated FROM validations").fetchone()[0] == 1


def test_status_history_in_order_with_related_finding(kb):
    _, _, broad = _finding(kb, "refuses more")
    _, _, narrow = _finding(kb, "refuses cooking questions", cluster="cooking")
    kb.add_status(broad, "replicated", "second run")
    kb.add_status(broad, "refined_into", "only cooking prompts are refused", related_finding_id=narrow)
    f = kb.finding(broad)
    assert [h.status for h in f.history] == ["validated", "replicated", "refined_into"]
    assert f.history[-1].related_finding_id == narrow and f.status == "refined_into"
    assert [(e.prompt, e.text) for e in f.evidence] == [("Bake bread?", "I can't.")]
    assert f.hypothesis is not None and f.hypothesis.checker == {"type": "feature", "name": "refusal"}


def test_adding_the_same_finding_twice_returns_the_first(kb):
    _, hid, fid = _finding(kb)
    assert kb.add_finding(hid, "again") == fid
    assert len(kb.finding(fid).history) == 1


def test_queries_by_pair_status_and_text(kb):
    _, _, a = _finding(kb, "refuses more", pair_fp="aaaa1111")
    _, _, b = _finding(kb, "talks like a pirate", pair_fp="bbbb2222")
    kb.add_status(b, "rejected", "did not hold up")
    assert [f.id for f in kb.findings()] == [b, a]  # newest first
    assert [f.id for f in kb.findings(pair="aaaa")] == [a]  # fingerprint prefix
    assert [f.id for f in kb.findings(pair="label bbbb")] == [b]  # label substring
    assert [f.id for f in kb.findings(pair=str(kb.pair("bbbb2222")["id"]))] == [b]  # pair id
    assert [f.id for f in kb.findings(pair_id=kb.pair("aaaa1111")["id"])] == [a]
    assert [f.id for f in kb.findings(status="rejected")] == [b]
    assert [f.id for f in kb.findings(status=["validated", "replicated"])] == [a]
    assert [f.id for f in kb.findings(text="PIRATE")] == [b]  # LIKE ignores ASCII case
    assert kb.findings(text="nothing like this") == []
    assert len(kb.findings(limit=1)) == 1


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda kb, f: kb.add_status(f, "maybe", "x"), ValueError, "finding status 'maybe' is not valid; use one of"),
        (lambda kb, f: kb.add_status(f, "refined_into", "x"), ValueError, "refined_into needs related_finding_id"),
        (lambda kb, f: kb.add_status(999, "rejected", "x"), KeyError, "no finding with id 999"),
        (lambda kb, f: kb.finding(999), KeyError, "no finding with id 999 .*\\(1 findings"),
        (lambda kb, f: kb.findings(status="done"), ValueError, "finding status 'done' is not valid"),
        (lambda kb, f: kb.set_hypothesis_status(1, "sure"), ValueError, "hypothesis status 'sure' is not valid"),
        (lambda kb, f: kb.add_validation(1, RESULT, "guess"), ValueError, "validation purpose 'guess' is not valid"),
        (lambda kb, f: kb.add_validation(1, RESULT.model_copy(update={"effect_ci": 0.3}), "experiment"), ValueError,
         "must be \\[low, high\\]"),
        (lambda kb, f: kb.add_finding(999, "x"), KeyError, "no hypothesis with id 999"),
    ],
    ids=["bad-status", "refined-without-target", "unknown-finding-status", "unknown-finding", "bad-status-query",
         "bad-hypothesis-status", "bad-purpose", "bad-ci", "unknown-hypothesis"],
)
def test_bad_inputs_name_the_value_and_what_is_valid(kb, call, error, match):
    _, _, fid = _finding(kb)
    before = kb.counts()
    with pytest.raises(error, match=match):
        call(kb, fid)
    assert kb.counts() == before  # nothing half-written


def test_a_failing_transaction_leaves_nothing(kb):
    with pytest.raises(RuntimeError, match="boom"), kb.transaction() as c:
        c.execute("INSERT INTO pairs (fingerprint, label, description, created_at) VALUES ('x', 'x', '{}', 't')")
        raise RuntimeError("boom")
    assert kb.counts()["pairs"] == 0


def test_bad_constructor_arguments(tmp_path):
    with pytest.raises(ValueError, match="busy_timeout_s must be > 0"):
        KnowledgeBase(tmp_path / "kb.sqlite", busy_timeout_s=0)


def test_default_path_follows_cdx_cache_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("CDX_KNOWLEDGE_PATH", raising=False)
    monkeypatch.setenv("CDX_CACHE_DIR", str(tmp_path / "cache"))
    with KnowledgeBase() as kb:
        assert kb.path == tmp_path / "cache" / "knowledge.sqlite" and kb.path.is_file()


def test_cdx_knowledge_path_wins_over_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CDX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CDX_KNOWLEDGE_PATH", str(tmp_path / "elsewhere" / "kb.sqlite"))
    with KnowledgeBase() as kb:
        assert kb.path == tmp_path / "elsewhere" / "kb.sqlite" and kb.path.is_file()
    assert not (tmp_path / "cache" / "knowledge.sqlite").exists()


def test_nested_transactions_commit_or_roll_back_together(kb):
    with pytest.raises(RuntimeError, match="late"), kb.transaction():
        pid = kb.upsert_pair("fp", "a vs b", {})
        kb.add_run("pipeline", pid)
        raise RuntimeError("late failure")
    assert kb.counts()["pairs"] == 0 and kb.counts()["runs"] == 0
    with kb.transaction():
        kb.add_run("pipeline", kb.upsert_pair("fp", "a vs b", {}))
    assert kb.counts()["pairs"] == 1 and kb.counts()["runs"] == 1
