"""The end of a search: headline numbers and the top and bottom tables."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table

from cdx.io.records import CycleRecord, Direction, SetFields
from cdx.search.bank import Bank


class SearchSummary(SetFields):
    """A search's headline numbers (summary.json and task=search's result are its `dump()`)."""

    bank_size: int
    n_seeds: int
    n_added: int
    """Prompts the cycles added (the bank's entries beyond the seeds)."""
    seed_divergence_mean: float
    top_divergence_mean: float
    """Mean divergence of the bank's `top_n` highest entries."""
    new_divergence_mean: float
    new_top_divergence_mean: float
    bank_divergence_mean: float
    cycles: int
    failed_cycles: int
    top_n: int
    direction: Direction | None = None
    """Which side the responses show (given when the decoding rule says)."""


def summary(bank: Bank, stats: list[CycleRecord], top_n: int, direction: Direction | None = None) -> SearchSummary:
    """Headline numbers: seeds' mean divergence against the bank's top `top_n`, and cycle counts.

    `direction` (`cdx.decoding.rules.direction_of(rule)`): which side the responses show.
    """
    div = np.array([e.divergence for e in bank.entries])
    seeds = np.array([e.divergence for e in bank.entries if e.cycle == 0])
    new = np.array([e.divergence for e in bank.entries if e.cycle > 0])
    top = np.sort(div)[::-1][:top_n]
    return SearchSummary(
        bank_size=len(bank),
        n_seeds=len(seeds),
        n_added=len(new),
        seed_divergence_mean=float(seeds.mean()) if len(seeds) else 0.0,
        top_divergence_mean=float(top.mean()) if len(top) else 0.0,
        new_divergence_mean=float(new.mean()) if len(new) else 0.0,
        new_top_divergence_mean=float(np.sort(new)[::-1][:top_n].mean()) if len(new) else 0.0,
        bank_divergence_mean=float(div.mean()) if len(div) else 0.0,
        cycles=sum(1 for s in stats if s.ok),
        failed_cycles=sum(1 for s in stats if not s.ok),
        top_n=top_n,
        **({"direction": direction} if direction else {}),
    )


def bank_table(bank: Bank, n: int, top: bool = True, width: int = 48) -> Table:
    """The `n` highest (or lowest) entries; `id`, `cycle` and `repeat` are bank.jsonl's values (0-based)."""
    ranked = sorted(bank.entries, key=lambda e: e.divergence, reverse=top)[:n]
    table = Table(title=f"{'Top' if top else 'Bottom'} {len(ranked)} prompts by divergence", show_lines=False)
    for col in ("#", "id", "divergence", "diversity", "criterion", "cycle", "repeat"):
        table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    for col in ("prompt", "first response"):
        table.add_column(col, overflow="ellipsis", no_wrap=True, max_width=width, min_width=width // 2)
    for rank, e in enumerate(ranked, 1):
        resp = (e.responses[0] if e.responses else "").replace("\n", " ")
        crit = "-" if e.criterion is None else f"{e.criterion:.0f}"
        table.add_row(str(rank), str(e.id), f"{e.divergence:.4f}", f"{e.diversity:.3f}", crit, str(e.cycle), str(e.repeat),
                      _cut(e.prompt, width), _cut(resp, width))
    return table


def print_tables(bank: Bank, n: int, console: Console | None = None, direction: Direction | None = None) -> None:
    """Top and bottom tables, after a line saying which side the responses show (if known)."""
    console = console or Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 180)  # logs and pipes: do not squeeze the prompts
    if direction:
        console.print(f"Responses show: {direction.description}")
    console.print(bank_table(bank, n, top=True))
    console.print(bank_table(bank, n, top=False))


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "\u2026"
