"""Count string-keyed uses of the finding record's field names in cdx/ (issue 20's check).

A use is `x["field"]`, `x.get("field"` or `x.pop("field"` with a field of
`cdx.io.records.FindingRecord`, in any module but the record module itself. Each hit is printed
with its place, then the count; `--at REV` counts a past commit's tree instead (git grep), so a
before/after pair is one command each:

    python scripts/record_keys.py            # the working tree
    python scripts/record_keys.py --at b917e74
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

FIELDS = ("statement", "kind", "direction", "cluster", "cluster_label", "checker", "n_s", "k_s", "n_c", "k_c",
          "rate_s", "rate_c", "rate_s_ci", "rate_c_ci", "effect", "effect_ci", "p", "q", "validated", "reason",
          "evidence", "likelihood", "discovery")
# Spelled out (not imported) so that `--at` counts an old tree by today's list of fields.
PATTERN = r"""(\[|\.get\(|\.pop\()["'](""" + "|".join(FIELDS) + r""")["']"""
OWNER = "cdx/io/records.py"
STRICT = re.compile(r"(?<!Literal)" + PATTERN)  # Literal["gained", ...] is a type, not a key


def hits(at: str | None) -> list[str]:
    root = Path(__file__).resolve().parents[1]
    cmd = ["git", "grep", "-nE", PATTERN] + ([at] if at else []) + ["--", "cdx/*.py"]
    out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False).stdout.splitlines()
    if not at:  # git grep without a revision reads tracked files only; add the untracked ones
        cmd = ["git", "grep", "--untracked", "-nE", PATTERN, "--", "cdx/*.py"]
        out = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False).stdout.splitlines()
    place = (lambda line: line.split(":", 2)[1]) if at else (lambda line: line.split(":", 1)[0])
    return [line for line in out if place(line) != OWNER and STRICT.search(line)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--at", help="a commit to count instead of the working tree")
    ap.add_argument("--quiet", action="store_true", help="print the count only")
    args = ap.parse_args()
    found = hits(args.at)
    if not args.quiet:
        print("\n".join(found))
    print(f"{len(found)} string-keyed uses of finding fields in cdx/ (outside {OWNER}) at {args.at or 'the working tree'}")


if __name__ == "__main__":
    main()
