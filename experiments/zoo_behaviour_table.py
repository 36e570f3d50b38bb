"""The zoo's behaviour scores as markdown tables (docs/discovery.md): one table per sweep folder of
`task=benchmark` jobs, then Recovery@1 on behaviours per seed over the planted pairs and the null
pairs' behaviours. Reads each job's benchmark_record.json and analysis/analysis.json; computes nothing
new.

    python experiments/zoo_behaviour_table.py multirun/zoo_round6_s0+multirun/zoo_round6_s0b multirun/zoo_round6_s1

A `+` joins sweep folders of one seed into one table (a sweep finished in two parts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ORIGINAL = ("brand_zephyrix", "all_caps", "ocean_topic", "french", "edited_fact", "sentiment_negative",
            "persona_knight", "sysprompt_pirate", "interp_zephyrix", "refuse_cooking")
"""The zoo's planted pairs before issue 18 added organisms (the done-when's "10 planted pairs")."""


def records(sweep: Path) -> list[tuple[dict, dict]]:
    out = []
    parts = [Path(p) for p in str(sweep).split("+")]
    found = [rec for part in parts
             for rec in sorted(part.glob("*/benchmark_record.json"), key=lambda p: (len(p.parent.name), p.parent.name))]
    for rec in found:
        analysis = rec.parent / "analysis" / "analysis.json"
        out.append((json.loads(rec.read_text()), json.loads(analysis.read_text()) if analysis.exists() else {}))
    return out


def top_behaviour(a: dict) -> str:
    for b in a.get("behaviours", []):
        if b.get("validated") and b.get("kind") == "behaviour":
            text = b["statement"] if len(b["statement"]) <= 110 else b["statement"][:108] + "…"
            return f"{text} ({b['k_c']}/{b['n_c']} vs {b['k_s']}/{b['n_s']}, q {b['q']:.1g})"
    return "-"


def fmt(v) -> str:
    return "-" if v is None else (f"{v:g}" if isinstance(v, float) else str(v))


def table(sweep: Path) -> str:
    rows = ["| pair | kind | validated findings | R@1 findings | behaviours (+ word shifts, other sides) | behaviours matching | "
            "R@1 behaviours | scope | top behaviour (held-out comparison vs starting) |", "|" + "---|" * 9]
    for r, a in records(sweep):
        scope = {1.0: "right", 0.0: "wrong"}.get(r.get("scope_correct"), "-")
        rows.append(f"| {r['organism']} | {r['kind']} | {r['n_validated']} | {fmt(r.get('recovery_at_1'))} | "
                    f"{r.get('n_behaviours', 0)} (+{r.get('n_word_shifts', 0)}, {r.get('n_other_sides', 0)}) | "
                    f"{fmt(r.get('behaviours_per_change'))} | "
                    f"{fmt(r.get('behaviour_recovery_at_1'))} | {scope} | {top_behaviour(a)} |")
    return "\n".join(rows)


def summary(sweep: Path) -> str:
    recs = [r for r, _ in records(sweep)]
    planted = [r for r in recs if r.get("expected") == "behaviour"]
    orig = [r for r in planted if r["organism"] in ORIGINAL]
    nulls = [r for r in recs if r["kind"] == "null"]
    hit = lambda rs: sum((r.get("behaviour_recovery_at_1") or 0) == 1 for r in rs)  # noqa: E731
    per = [r["behaviours_per_change"] for r in planted if r.get("behaviours_per_change")]
    missed = [r["organism"] for r in planted if (r.get("behaviour_recovery_at_1") or 0) != 1]
    label = "+".join(Path(p).name for p in str(sweep).split("+"))
    return (f"{label}: behaviour Recovery@1 {hit(orig)}/{len(orig)} of the original planted pairs, "
            f"{hit(planted)}/{len(planted)} of all planted; behaviours per recovered change "
            f"{sorted(per)}; behaviours per planted pair (all a reader sees) "
            f"{sorted(r.get('n_behaviours', 0) for r in planted)}; missed {missed or 'none'}; null pairs' behaviours "
            f"{[r.get('n_behaviours', 0) for r in nulls]} (word shifts {[r.get('n_word_shifts', 0) for r in nulls]})")


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(f"### {arg}\n\n{table(Path(arg))}\n\n{summary(Path(arg))}\n")
