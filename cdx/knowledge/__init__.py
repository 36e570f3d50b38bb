"""The knowledge base of findings: one SQLite file that every run adds to and every pipeline starts from.

    kb = KnowledgeBase()                      # $CDX_CACHE_DIR/knowledge.sqlite, WAL, schema migrated
    record_analysis("outputs/.../analyze")    # every tested hypothesis of an analyze run
    kb.findings(pair="pirate", status="validated", text="arr")
    kb.finding(3)["history"]                  # validated -> replicated -> refined_into ...

Tables (cdx/knowledge/_schema.py): pairs (fingerprint of both sides), runs, hypotheses,
validations (counts, rates, CIs, p, q), findings, finding_history, evidence, file_hashes.
"""

from cdx.knowledge._db import KnowledgeBase, default_path, open_knowledge
from cdx.knowledge._fingerprint import FileHasher, pair_fingerprint, pair_identity, pair_label
from cdx.knowledge._record import hypothesis_key, record_analysis, record_hypothesis, register_pair
from cdx.knowledge._schema import FINDING_STATUSES, HYPOTHESIS_STATUSES, MIGRATIONS, SCHEMA_VERSION, migrate

__all__ = [
    "FINDING_STATUSES", "HYPOTHESIS_STATUSES", "MIGRATIONS", "SCHEMA_VERSION", "FileHasher", "KnowledgeBase",
    "default_path", "hypothesis_key", "migrate", "open_knowledge", "pair_fingerprint", "pair_identity", "pair_label",
    "record_analysis", "record_hypothesis", "register_pair",
]
