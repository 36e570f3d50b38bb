"""The search tables show what bank.jsonl holds: ids, cycles and repeats as written."""

import numpy as np
from rich.console import Console

from cdx.decoding.rules import LogitDiff, direction_of
from cdx.io import read_records
from cdx.io.records import CycleRecord
from cdx.search.bank import Bank, BankEntry, BankStore, SearchState
from cdx.search.report import bank_table, print_tables, summary


def _bank():
    bank = Bank()
    entries = [BankEntry(prompt=f"prompt number {i}", divergence=float(d), sample_divergences=[float(d)],
                         responses=[f"reply {i}"], criterion=None, cycle=c, repeat=r)
               for i, (d, c, r) in enumerate([(0.5, 0, 0), (2.0, 1, 0), (1.0, 0, 1), (3.0, 2, 1), (0.1, 1, 1)])]
    bank.add(entries, np.eye(5, 4, dtype=np.float32))
    return bank


def _rows(table) -> list[list[str]]:
    console = Console(record=True, width=300, color_system=None)
    console.print(table)
    lines = [ln for ln in console.export_text().splitlines() if "prompt number" in ln]
    return [[c.strip() for c in ln.split("\u2502")[1:-1]] for ln in lines]


def test_repeat_cycle_and_id_columns_agree_with_bank_jsonl(tmp_path):
    bank = _bank()
    BankStore(tmp_path).save(bank, SearchState(repeat=1, seeded=True, cycle=2, attempt=2))
    on_disk = {r["prompt"]: r for r in read_records(tmp_path / "bank.jsonl")}
    for top in (True, False):
        rows = _rows(bank_table(bank, 5, top=top))
        assert len(rows) == 5
        for row in rows:
            rec = on_disk[row[7]]
            assert (int(row[1]), int(row[5]), int(row[6])) == (rec["id"], rec["cycle"], rec["repeat"])
            assert float(row[2]) == round(rec["divergence"], 4)
        divs = [float(r[2]) for r in rows]
        assert divs == sorted(divs, reverse=top)


def _cycle(ok: bool) -> CycleRecord:
    zero = {"mean": 0.0, "std": 0.0, "max": 0.0, "min": 0.0}
    return CycleRecord(subsample={"ids": [], "divergence": zero, "diversity": zero}, repeat=0, attempt=1, seed=0, ok=ok)


def test_summary_headlines_by_hand():
    s = summary(_bank(), [_cycle(True), _cycle(False)], top_n=2)
    assert s.bank_size == 5 and s.n_seeds == 2 and s.n_added == 3
    assert s.top_divergence_mean == (3.0 + 2.0) / 2
    assert s.seed_divergence_mean == (0.5 + 1.0) / 2
    assert (s.cycles, s.failed_cycles) == (1, 1)


def test_direction_heads_the_tables_and_the_summary():
    d = direction_of(LogitDiff(alpha=1.0, amplified="comparison"))
    console = Console(record=True, width=300, color_system=None)
    print_tables(_bank(), 2, console=console, direction=d)
    assert console.export_text().splitlines()[0] == f"Responses show: {d.description}"
    assert summary(_bank(), [], top_n=2, direction=d).dump()["direction"] == {"shows": "comparison",
                                                                               "description": d.description}
    assert "direction" not in summary(_bank(), [], top_n=2).dump()
