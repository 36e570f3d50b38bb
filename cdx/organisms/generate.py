"""Sample answers from one side of a pair with transformers' `generate` (seeded, batched, left-padded).

Used for the base model's own answers (the raw material of the rewriting rules) and for the
held-out verification samples. Prompts are rendered by `Side.prompt_ids`, exactly as the rest of
cdx renders them (chat template, system prompt, prefix).
"""

from __future__ import annotations

import re

import torch
from tqdm import tqdm

from cdx.models.pair import Side


def sample_answers(side: Side, prompts: list[str], max_new_tokens: int, temperature: float, seed: int,
                   batch_size: int = 16, desc: str = "sampling") -> list[str]:
    """One sampled answer per prompt (temperature 0 = greedy), special tokens removed."""
    tok, model = side.tokenizer, side.model
    out: list[str] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc=desc, leave=False):
        chunk = prompts[start: start + batch_size]
        ids = [side.prompt_ids(p) for p in chunk]
        width = max(map(len, ids))
        pad = tok.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids])  # (B, T) left-padded
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
        torch.manual_seed(seed + start)  # each batch seeded from the run seed and its position
        kw = dict(do_sample=True, temperature=temperature, top_k=0) if temperature > 0 else dict(do_sample=False)
        with torch.no_grad():
            gen = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 pad_token_id=pad, **kw)
        out += [tok.decode(row[width:], skip_special_tokens=True).strip() for row in gen]
    return out


def trim_to_sentence(text: str) -> str:
    """Cut a length-truncated answer after its last full sentence (kept whole if it has none)."""
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[: ends[-1]].strip() if ends else text.strip()
