"""Several processes writing at once: every write lands, none is duplicated, the file stays intact."""

from __future__ import annotations

import multiprocessing as mp

from cdx.io.records import Evidence, FindingRecord
from cdx.knowledge import KnowledgeBase

N_PROC, N_EACH = 4, 20


def _writer(path: str, w: int) -> None:
    # Each process opens its own connection (as separate runs would) and shares one pair with the others.
    with KnowledgeBase(path, busy_timeout_s=2.0, retries=12) as kb:
        pid = kb.upsert_pair("shared-pair", "a vs b", {})
        run = kb.add_run("test", pid, run_dir=f"w{w}")
        for i in range(N_EACH):
            hid = kb.upsert_hypothesis(pid, f"w{w}-h{i}", f"hypothesis {w}.{i}", run_id=run)
            vid = kb.add_validation(hid, FindingRecord(id=f"{w}-{i}", statement="s", n_s=i, k_s=0, n_c=i, k_c=i,
                                                   validated=True), "discovery", run)
            fid = kb.add_finding(hid, "found", run, vid, [Evidence(id=f"{w}-{i}", text="t")])
            kb.add_status(fid, "replicated", f"by writer {w}", run)


def test_concurrent_writers_lose_nothing(tmp_path):
    path = str(tmp_path / "kb.sqlite")  # created by the writers themselves, racing on the migration too
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w)) for w in range(N_PROC)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * N_PROC
    with KnowledgeBase(path) as kb:
        n = N_PROC * N_EACH
        assert kb.integrity() == "ok"
        assert kb.counts() == {"pairs": 1, "runs": N_PROC, "hypotheses": n, "validations": n, "findings": n,
                               "finding_history": 2 * n, "evidence": n}
        assert [r[0] for r in kb.conn.execute("SELECT version FROM schema_version")] == [1, 2, 3]
        rows = kb.conn.execute("SELECT f.status, COUNT(h.id) FROM findings f JOIN finding_history h ON h.finding_id=f.id "
                               "GROUP BY f.id").fetchall()
        assert all(tuple(r) == ("replicated", 2) for r in rows)
        keys = {r[0] for r in kb.conn.execute("SELECT key FROM hypotheses")}
        assert keys == {f"w{w}-h{i}" for w in range(N_PROC) for i in range(N_EACH)}
