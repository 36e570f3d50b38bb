"""The messages sent to the assistant: a request for new prompts, a repair, a yes/no judgement."""

from __future__ import annotations

import numpy as np

from cdx.assistant import Message
from cdx.search.instructions import Criterion, Instructions
from cdx.search.subsample import minmax

VALUE_SCALE = 10.0
"""Shown values are min-max scaled to [0, VALUE_SCALE] within the subsample (as upstream)."""


def shown_values(divergence: np.ndarray, mode: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """(display order, values in that order or None) for `context_values` = shown | random | hidden.

    shown: the real divergences, scaled, in the given (divergence-sorted) order. random: uniform
    values in [0, VALUE_SCALE], the examples re-sorted by them (the ablation of upstream's
    `randomize_in_context_divs`). hidden: no values.
    """
    n = len(divergence)
    order = np.arange(n)
    if mode == "hidden":
        return order, None
    if mode == "random":
        vals = rng.uniform(0.0, VALUE_SCALE, n)
        order = np.argsort(-vals, kind="stable")
        return order, np.round(vals[order], 1)
    return order, np.round(VALUE_SCALE * minmax(divergence), 1)


def request_messages(
    instr: Instructions, prompts: list[str], values: np.ndarray | None, n: int
) -> list[Message]:
    """System + user message asking for `n` new prompts, showing `prompts` (with `values` if given)."""
    if prompts:
        if values is None:
            lines = [instr.example.format(i=i, prompt=p) for i, p in enumerate(prompts, 1)]
        else:
            lines = [instr.example_with_value.format(i=i, value=f"{v:.1f}", prompt=p)
                     for i, (p, v) in enumerate(zip(prompts, values), 1)]
        fill = {"examples": "\n".join(lines), "n": n, "values_note": instr.values_note if values is not None else ""}
        user = instr.user
    else:
        fill = {"examples": "", "n": n, "values_note": ""}
        user = instr.user_first or instr.user
    return [{"role": "system", "content": instr.system.format(**fill).strip()},
            {"role": "user", "content": user.format(**fill).strip()}]


def repair_messages(instr: Instructions, messages: list[Message], reply: str) -> list[Message]:
    return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": instr.repair}]


def judge_messages(criterion: Criterion, prompt: str, response: str) -> list[Message]:
    msgs: list[Message] = [{"role": "system", "content": criterion.text}]
    msgs += [{"role": "user", "content": ex} for ex in criterion.examples]
    msgs.append({"role": "user", "content": criterion.template.format(prompt=prompt, response=response)})
    return msgs
