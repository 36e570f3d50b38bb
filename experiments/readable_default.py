"""Before/after figures for the default decoding and ranking (README, "The default").

For each run folder and ranking key: of the top-N texts a report shows (identical samples once),
the fraction that are readable (`cdx.metrics.text.is_degenerate` is False) and the fraction that
show the comparison model's behaviour (contain one of `--words`, by default the pirate persona's),
plus the same fractions over all texts of the run.

    python experiments/readable_default.py outputs/before outputs/after --keys kl_sc_mean auto
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from cdx.io import read_records
from cdx.metrics.summary import shown, summarize
from cdx.metrics.text import is_degenerate

PIRATE = "arr,arrr,ahoy,matey,ye,aye,treasure,ship,crew,captain,pirate,hearty,plunder,sea,seas,sail"


def figures(records: list[dict], key: str, top_n: int, words: list[str]) -> dict:
    """Readable and marker fractions over the top `top_n` shown texts and over all texts."""
    key = summarize(records, sort_key=key, top_n=top_n)["sort_key"]  # resolves `auto`
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, words)) + r")\b", re.I)
    top = [r["continuation"] for r, _ in shown(records, key, top_n)]
    every = [r["continuation"] for r in records]

    def frac(texts, test):
        return sum(map(test, texts)) / max(len(texts), 1)

    return {"key": key, "top_readable": frac(top, lambda t: not is_degenerate(t)),
            "top_marked": frac(top, lambda t: bool(pattern.search(t))),
            "all_readable": frac(every, lambda t: not is_degenerate(t)),
            "all_marked": frac(every, lambda t: bool(pattern.search(t))), "n": len(records)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders holding generations.jsonl")
    ap.add_argument("--keys", nargs="+", default=["kl_sc_mean", "auto"], help="ranking keys (auto = contrast score)")
    ap.add_argument("--top-n", type=int, default=5)
    ap.add_argument("--words", default=PIRATE, help="comma-separated marker words of the comparison model")
    args = ap.parse_args()
    words = args.words.split(",")
    print("| run | ranked by | top-5 readable | top-5 with marker words | all readable | all with marker words | texts |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        records = read_records(run / "generations.jsonl")
        for key in args.keys:
            f = figures(records, key, args.top_n, words)
            print(f"| {run.name} | {f['key']} | {f['top_readable']:.0%} | {f['top_marked']:.0%} | "
                  f"{f['all_readable']:.0%} | {f['all_marked']:.0%} | {f['n']} |")


if __name__ == "__main__":
    main()
