"""Record an analysis run's tested hypotheses in the knowledge base (what task=analyze calls when enabled)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from cdx.errors import CdxUserError
from cdx.io.records import FindingRecord, KnownFinding, OpenHypothesis
from cdx.io.rundir import read_run_file
from cdx.knowledge._db import KnowledgeBase
from cdx.knowledge._fingerprint import FileHasher, pair_fingerprint, pair_label

log = logging.getLogger(__name__)


Claim = FindingRecord | OpenHypothesis | KnownFinding
"""What names a hypothesis's claim: a findings record, a hypothesis handed to the agent, a known finding."""


def hypothesis_key(record: Claim) -> str:
    """Two hypotheses are the same claim when kind, direction, checker and cluster agree (wording may differ)."""
    claim = {"kind": record.kind, "direction": record.direction, "checker": record.checker,
             "cluster": cluster_name(record)}
    return hashlib.sha256(json.dumps(claim, sort_keys=True).encode()).hexdigest()[:32]


def cluster_name(record: Claim) -> str | None:
    """The prompt condition of a hypothesis: its cluster's label (stable across runs) or else its cluster id."""
    c = getattr(record, "cluster_label", None) or record.cluster
    return None if c is None else str(c)


def finding_record(record: FindingRecord | Mapping) -> FindingRecord:
    """A findings.jsonl record as the typed record (checked: a statement and a checker are required)."""
    if isinstance(record, FindingRecord):
        return record
    missing = [k for k in ("statement", "checker") if k not in record]
    if missing:
        raise CdxUserError(f"hypothesis record {record.get('id', '?')} lacks {missing}; keys: {sorted(record)}")
    try:
        return FindingRecord.model_validate(dict(record))
    except ValidationError as e:
        raise CdxUserError(f"hypothesis record {record.get('id', '?')} is not a findings record: "
                           f"{e.errors()[0]['loc']}: {e.errors()[0]['msg']}") from None


def register_pair(kb: KnowledgeBase, model_cfg: Any) -> int:
    """The pair's id in `kb` (fingerprinted from cfg.model, a dict or a loaded ModelPair)."""
    fp, ident = pair_fingerprint(model_cfg, FileHasher(kb))
    return kb.upsert_pair(fp, pair_label(model_cfg), ident)


class HypothesisRecorded(BaseModel):
    """What `record_hypothesis` did: the rows it wrote and the finding's change (None: unchanged)."""

    hypothesis_id: int
    validation_id: int
    finding_id: int | None = None
    change: Literal["validated", "replicated", "not_replicated"] | None = None


def record_hypothesis(kb: KnowledgeBase, pair_id: int, record: FindingRecord | Mapping, run_id: int | None,
                      purpose: str, run_dir: str | Path | None = None, parent_id: int | None = None,
                      omit: frozenset[str] = frozenset()) -> HypothesisRecorded:
    """One tested hypothesis (a findings.jsonl record): its row, the validation, and the finding's new status.

    A validated hypothesis becomes a finding; one that was already a finding gets `replicated` (or
    `not_replicated` when this test did not validate it), unless it was refined into a narrower
    finding (the validation is kept, the status stays). `omit`: record fields kept out of the
    validation's details.
    """
    r = finding_record(record)
    hid = kb.upsert_hypothesis(pair_id, hypothesis_key(r), r.statement, r.kind, r.direction, cluster_name(r),
                               r.checker, parent_id, run_id)
    vid = kb.add_validation(hid, r, purpose, run_id, omit)
    known = kb.finding_status(hid)
    why = _why(r, purpose)
    out = HypothesisRecorded(hypothesis_id=hid, validation_id=vid)
    if known is None and r.validated:
        out.finding_id, out.change = kb.add_finding(hid, why, run_id, vid, r.evidence, run_dir), "validated"
    elif known is not None and known[1] == "refined_into":
        # The broad pattern is still seen, which its narrower finding explains: keep the refinement as the status.
        out.finding_id = known[0]
    elif known is not None:
        out.finding_id, out.change = known[0], "replicated" if r.validated else "not_replicated"
        kb.add_status(known[0], out.change, why, run_id, vid, evidence=r.evidence if r.validated else [], run_dir=run_dir)
    return out


class Recorded(BaseModel):
    """What recording one analysis into the knowledge base did."""

    pair_id: int
    run_id: int
    """The run's row: the new one, or the earlier one when `already_recorded`."""
    already_recorded: bool = False
    """This run (same record key: a resume or rerun of it) was recorded before; nothing was added."""
    recorded_from: str | None = None
    """The run folder of that earlier record (it may be another folder with the very same settings and seed)."""
    n_hypotheses: int = 0
    n_findings_new: int = 0
    n_replicated: int = 0
    n_not_replicated: int = 0
    finding_ids: list[int] = []

    def __getitem__(self, field: str) -> Any:
        """`rec["n_findings_new"]`: callers written when this was a dict keep working."""
        return getattr(self, field)


@dataclass
class _Analysis:
    """An analysis to record: its tested hypotheses and where they come from."""

    records: list[FindingRecord]
    model: Any
    run_dir: Path | None
    config: dict | None
    command: str | None
    key: str | None


def record_analysis(run_dir_or_findings: str | Path | Sequence[Mapping | FindingRecord],
                    kb: KnowledgeBase | Mapping | str | Path | None = None,
                    model: Any = None, run_dir: str | Path | None = None, kind: str = "analyze",
                    command: str | None = None, config: dict | None = None, git_commit: str | None = None
                    ) -> Recorded | None:
    """Record every hypothesis of an analysis (its run folder, or its findings records) in the knowledge base.

    `model` is the pair config (cfg.model); for a run folder it defaults to the folder's
    `.hydra/config.yaml`. `kb` is a KnowledgeBase, a path, None for the default file, or the
    conf/knowledge settings as a dict (then nothing is recorded, and None returned, when
    `enabled` is false).

    One transaction: the whole analysis is recorded or nothing of it (a full disk, a kill). A run
    is recorded once: its key is the run folder's identity fingerprint (run.json; else the
    folder's path), so recording a resumed or rerun analysis again adds nothing and says so
    (`already_recorded`), never a replication of itself.
    """
    base = _open(kb)
    if base is None:
        return None
    try:
        return _record(base, _load(run_dir_or_findings, run_dir, model, config, command), kind, git_commit)
    finally:
        if base is not kb:
            base.close()


def record_key(run_dir: str | Path | None) -> str | None:
    """What makes two records the same run: its identity fingerprint (run.json), else its folder; None without one.

    The fingerprint covers the pair's settings, the seed, the analysis options and the prompts, so
    another folder with the same key drew the very same samples: not a replication either.
    """
    if run_dir is None:
        return None
    info = read_run_file(run_dir)
    if info and info.fingerprint:
        return f"run:{info.fingerprint}"
    return f"dir:{Path(run_dir).resolve()}"


def _open(kb) -> KnowledgeBase | None:
    if isinstance(kb, KnowledgeBase):
        return kb
    if isinstance(kb, Mapping):  # conf/knowledge settings, e.g. from task=analyze
        from cdx.knowledge._db import open_knowledge

        return open_knowledge(kb)
    return KnowledgeBase(kb)


def _record(kb: KnowledgeBase, a: _Analysis, kind: str, git_commit: str | None) -> Recorded:
    fp, ident = pair_fingerprint(a.model, FileHasher(kb))  # weights are hashed before the write lock is taken
    with kb.transaction():  # the whole analysis or nothing of it
        pair_id = kb.upsert_pair(fp, pair_label(a.model), ident)
        earlier = kb.recorded_run(pair_id, a.key, kind, a.run_dir) if a.key else None
        if earlier:
            return Recorded(pair_id=pair_id, run_id=earlier["id"], already_recorded=True,
                            recorded_from=earlier["run_dir"])
        run_id = kb.add_run(kind, pair_id, a.command, a.config, git_commit, a.run_dir, record_key=a.key)
        changes = [record_hypothesis(kb, pair_id, r, run_id, "discovery", a.run_dir) for r in a.records]
    out = Recorded(pair_id=pair_id, run_id=run_id, n_hypotheses=len(changes),
                   n_findings_new=sum(c.change == "validated" for c in changes),
                   n_replicated=sum(c.change == "replicated" for c in changes),
                   n_not_replicated=sum(c.change == "not_replicated" for c in changes),
                   finding_ids=sorted({c.finding_id for c in changes if c.finding_id is not None}))
    log.debug("knowledge base: %s", out)  # the caller (task=analyze, the pipeline) reports it in words
    return out


def _load(src, run_dir, model, config, command) -> _Analysis:
    if isinstance(src, (str, Path)):
        run_dir = Path(src)
        path = run_dir / "findings.jsonl"
        if not path.is_file():
            raise CdxUserError(f"{run_dir} has no findings.jsonl: give an analysis run folder (task=analyze)")
        from cdx.io import read_records

        records = [finding_record(r) for r in read_records(path)]
        config, model, command = _hydra_files(run_dir, config, model, command)
    else:
        records = [finding_record(r) for r in src]
    if model is None:
        raise CdxUserError("record_analysis needs the pair: pass model=cfg.model (the run folder has no "
                           ".hydra/config.yaml)")
    run_dir = Path(run_dir) if run_dir is not None else None
    return _Analysis(records, model, run_dir, config, command, record_key(run_dir))


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


def _why(r: FindingRecord, purpose: str) -> str:
    rates = f"{r.k_s}/{r.n_s} vs {r.k_c}/{r.n_c}"
    stats = f"effect={_f(r.effect)} p={_f(r.p)} q={_f(r.q)}"
    verdict = "validated" if r.validated else "not validated"
    return f"{purpose}: {verdict} ({rates}, {stats})"


def _f(x) -> str:
    return "NA" if x is None else f"{x:.3g}"
