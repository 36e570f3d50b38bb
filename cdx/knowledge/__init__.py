"""The knowledge base of findings: one SQLite file that every run adds to and every pipeline starts from.

    kb = KnowledgeBase()                      # $CDX_CACHE_DIR/knowledge.sqlite, WAL, schema migrated
    record_analysis("outputs/.../analyze")    # every tested hypothesis of an analyze run, once per run
    kb.findings(pair="pirate", status="validated", text="arr")
    kb.finding(3)["history"]                  # validated -> replicated -> refined_into ...
    KnowledgeBase(path, readonly=True)        # for queries: SQLite mode=ro, nothing created or changed
    check_path(path, write=True)              # milliseconds: a directory, a foreign or newer file... refused

Tables (cdx/knowledge/_schema.py): pairs (fingerprint of both sides), runs, hypotheses,
validations (counts, rates, CIs, p, q), findings, finding_history, evidence, file_hashes.
"""

from cdx.knowledge._check import KnowledgeFile, check_config, check_path, inspect_path
from cdx.knowledge._db import KnowledgeBase, default_path, open_knowledge
from cdx.knowledge._errors import KnowledgeBaseBusy, KnowledgeBaseError, KnowledgeBaseMissing, UnknownFinding
from cdx.knowledge._fingerprint import FileHasher, pair_fingerprint, pair_identity, pair_label
from cdx.knowledge._record import Recorded, hypothesis_key, record_analysis, record_hypothesis, record_key, register_pair
from cdx.knowledge._schema import FINDING_STATUSES, HYPOTHESIS_STATUSES, MIGRATIONS, SCHEMA_VERSION, migrate

__all__ = [
    "FINDING_STATUSES", "HYPOTHESIS_STATUSES", "MIGRATIONS", "SCHEMA_VERSION", "FileHasher", "KnowledgeBase",
    "KnowledgeBaseBusy", "KnowledgeBaseError", "KnowledgeBaseMissing", "KnowledgeFile", "Recorded", "UnknownFinding",
    "check_config", "check_path", "default_path", "hypothesis_key", "inspect_path", "migrate", "open_knowledge",
    "pair_fingerprint", "pair_identity", "pair_label", "record_analysis", "record_hypothesis", "record_key",
    "register_pair",
]
