"""Record an analysis run's tested hypotheses in the knowledge base (what task=analyze calls when enabled)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cdx.knowledge._db import KnowledgeBase
from cdx.knowledge._fingerprint import FileHasher, pair_fingerprint, pair_label

log = logging.getLogger(__name__)


def hypothesis_key(record: dict) -> str:
    """Two hypotheses are the same claim when kind, direction, checker and cluster agree (wording may differ)."""
    claim = {k: record.get(k) for k in ("kind", "direction", "checker")}
    claim["cluster"] = cluster_name(record)
    return hashlib.sha256(json.dumps(claim, sort_keys=True).encode()).hexdigest()[:32]


def cluster_name(record: dict) -> str | None:
    """The prompt condition of a hypothesis: its cluster's label (stable across runs) or else its cluster id."""
    c = record.get("cluster_label") or record.get("cluster")
    return None if c is None else str(c)


def register_pair(kb: KnowledgeBase, model_cfg: Any) -> int:
    """The pair's id in `kb` (fingerprinted from cfg.model, a dict or a loaded ModelPair)."""
    fp, ident = pair_fingerprint(model_cfg, FileHasher(kb))
    return kb.upsert_pair(fp, pair_label(model_cfg), ident)


def record_hypothesis(kb: KnowledgeBase, pair_id: int, record: dict, run_id: int | None, purpose: str,
                      run_dir: str | Path | None = None, parent_id: int | None = None) -> dict:
    """One tested hypothesis (a findings.jsonl record): its row, the validation, and the finding's new status.

    A validated hypothesis becomes a finding; one that was already a finding gets `replicated` (or
    `not_replicated` when this test did not validate it), unless it was refined into a narrower
    finding (the validation is kept, the status stays). Returns ids and what changed.
    """
    missing = [k for k in ("statement", "checker") if k not in record]
    if missing:
        raise ValueError(f"hypothesis record {record.get('id', '?')} lacks {missing}; keys: {sorted(record)}")
    hid = kb.upsert_hypothesis(pair_id, hypothesis_key(record), record["statement"], record.get("kind"),
                               record.get("direction"), cluster_name(record), record["checker"], parent_id, run_id)
    vid = kb.add_validation(hid, record, purpose, run_id)
    known = kb.finding_for_hypothesis(hid)
    validated, evidence = bool(record.get("validated")), record.get("evidence") or []
    why = _why(record, purpose)
    if known is None and validated:
        fid, change = kb.add_finding(hid, why, run_id, vid, evidence, run_dir), "validated"
    elif known is not None and known["status"] == "refined_into":
        # The broad pattern is still seen, which its narrower finding explains: keep the refinement as the status.
        fid, change = known["id"], None
    elif known is not None:
        fid, change = known["id"], "replicated" if validated else "not_replicated"
        kb.add_status(fid, change, why, run_id, vid, evidence=evidence if validated else [], run_dir=run_dir)
    else:
        fid, change = None, None
    return {"hypothesis_id": hid, "validation_id": vid, "finding_id": fid, "change": change}


def record_analysis(run_dir_or_findings: str | Path | list[dict], kb: KnowledgeBase | Mapping | str | Path | None = None,
                    model: Any = None, run_dir: str | Path | None = None, kind: str = "analyze",
                    command: str | None = None, config: dict | None = None, git_commit: str | None = None) -> dict | None:
    """Record every hypothesis of an analysis (its run folder, or its findings records) in the knowledge base.

    `model` is the pair config (cfg.model); for a run folder it defaults to the folder's
    `.hydra/config.yaml`. `kb` is a KnowledgeBase, a path, None for the default file, or the
    conf/knowledge settings as a dict (then nothing is recorded, and None returned, when
    `enabled` is false). Returns {pair_id, run_id, n_hypotheses, n_findings_new, n_replicated,
    n_not_replicated, finding_ids}.
    """
    own = not isinstance(kb, KnowledgeBase)
    if isinstance(kb, Mapping):  # conf/knowledge settings, e.g. from task=analyze
        from cdx.knowledge._db import open_knowledge

        base = open_knowledge(kb)
        if base is None:
            return None
    else:
        base = kb if not own else KnowledgeBase(kb)
    try:
        records, run_dir, model, config, command = _load(run_dir_or_findings, run_dir, model, config, command)
    except BaseException:
        if own:
            base.close()
        raise
    try:
        pair_id = register_pair(base, model)
        run_id = base.add_run(kind, pair_id, command, config, git_commit, run_dir)
        changes = [record_hypothesis(base, pair_id, r, run_id, "discovery", run_dir) for r in records]
    finally:
        if own:
            base.close()
    out = {"pair_id": pair_id, "run_id": run_id, "n_hypotheses": len(changes),
           "n_findings_new": sum(c["change"] == "validated" for c in changes),
           "n_replicated": sum(c["change"] == "replicated" for c in changes),
           "n_not_replicated": sum(c["change"] == "not_replicated" for c in changes),
           "finding_ids": sorted({c["finding_id"] for c in changes if c["finding_id"] is not None})}
    log.debug("knowledge base: %s", out)  # the caller (task=analyze, the pipeline) reports it in words
    return out


def _load(src, run_dir, model, config, command):
    if isinstance(src, (str, Path)):
        run_dir = Path(src)
        path = run_dir / "findings.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{run_dir} has no findings.jsonl: give an analysis run folder (task=analyze)")
        from cdx.io import read_records

        records = read_records(path)
        config, model, command = _hydra_files(run_dir, config, model, command)
    else:
        records = list(src)
    if model is None:
        raise ValueError("record_analysis needs the pair: pass model=cfg.model (the run folder has no .hydra/config.yaml)")
    return records, run_dir, model, config, command


def _hydra_files(run_dir: Path, config, model, command):
    """The config, pair and command line Hydra saved in the run folder, for what the caller did not give."""
    from omegaconf import OmegaConf

    saved = run_dir / ".hydra" / "config.yaml"
    if saved.is_file():
        full = OmegaConf.load(saved)
        config = config if config is not None else OmegaConf.to_container(full, resolve=False)
        if model is None and "model" in full:
            model = OmegaConf.to_container(full.model, resolve=True)
    overrides = run_dir / ".hydra" / "overrides.yaml"
    if command is None and overrides.is_file():
        command = " ".join(["python -m cdx.run", *map(str, OmegaConf.load(overrides))])
    return config, model, command


def _why(r: dict, purpose: str) -> str:
    rates = f"{r.get('k_s')}/{r.get('n_s')} vs {r.get('k_c')}/{r.get('n_c')}"
    stats = f"effect={_f(r.get('effect'))} p={_f(r.get('p'))} q={_f(r.get('q'))}"
    verdict = "validated" if r.get("validated") else "not validated"
    return f"{purpose}: {verdict} ({rates}, {stats})"


def _f(x) -> str:
    return "NA" if x is None else f"{x:.3g}"
