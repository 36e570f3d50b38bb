"""Count string-keyed uses of a record's field names in cdx/ (issue 20's check).

A use is `x["field"]`, `x.get("field"` or `x.pop("field"` with a field of the record. Each hit is
printed with its place, then the count; `--at REV` counts a past commit's tree instead (git grep),
so a before/after pair is one command each:

    python scripts/record_keys.py                          # findings, the working tree
    python scripts/record_keys.py --at b917e74
    python scripts/record_keys.py --record sample --at 0cce9a6

`--record finding` (default): the fields of `cdx.io.records.FindingRecord`, in any module but the
record module itself. `--record sample`: the fields of `SampleRecord`, in the modules that handle
samples (cdx/analysis, cdx/agent); several of these names (id, text, prompt) are also keys of other
records, so the sample count is limited to those packages.
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

# Spelled out (not imported) so that `--at` counts an old tree by today's list of fields.
FIELDS = {
    "finding": ("statement", "kind", "direction", "cluster", "cluster_label", "checker", "n_s", "k_s", "n_c", "k_c",
                "rate_s", "rate_c", "rate_s_ci", "rate_c_ci", "effect", "effect_ci", "p", "q", "validated", "reason",
                "evidence", "likelihood", "discovery"),
    "sample": ("id", "split", "mode", "model", "prompt_index", "prompt", "text", "token_ids", "token_strs", "logp_s",
               "logp_c", "kl_sc", "delta", "n_tokens", "finish_reason", "logq", "text_logp", "top_next"),
}
PATHS = {"finding": ["cdx/*.py"], "sample": ["cdx/analysis/*.py", "cdx/agent/*.py"]}
OWNER = "cdx/io/records.py"


def pattern(record: str) -> str:
    return r"""(\[|\.get\(|\.pop\()["'](""" + "|".join(FIELDS[record]) + r""")["']"""


def hits(at: str | None, record: str = "finding") -> list[str]:
    root = Path(__file__).resolve().parents[1]
    strict = re.compile(r"(?<!Literal)" + pattern(record))  # Literal["gained", ...] is a type, not a key
    # git grep without a revision reads tracked files only: --untracked adds the new ones
    cmd = ["git", "grep", *([] if at else ["--untracked"]), "-nE", pattern(record), *([at] if at else []),
           "--", *PATHS[record]]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False).stdout.splitlines()
    place = (lambda line: line.split(":", 2)[1]) if at else (lambda line: line.split(":", 1)[0])
    return [line for line in out if place(line) != OWNER and strict.search(line)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--at", help="a commit to count instead of the working tree")
    ap.add_argument("--record", choices=sorted(FIELDS), default="finding", help="whose field names to count")
    ap.add_argument("--quiet", action="store_true", help="print the count only")
    args = ap.parse_args()
    found = hits(args.at, args.record)
    if not args.quiet:
        print("\n".join(found))
    where = "cdx/" if args.record == "finding" else "cdx/analysis, cdx/agent"
    print(f"{len(found)} string-keyed uses of {args.record} fields in {where} (outside {OWNER}) "
          f"at {args.at or 'the working tree'}")


if __name__ == "__main__":
    main()
