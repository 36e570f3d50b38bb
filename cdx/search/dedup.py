"""Exact and near duplicates: what a new prompt must not repeat to enter the bank."""

from __future__ import annotations

import re

import numpy as np


def normalize(text: str) -> str:
    """Case, inner whitespace and surrounding punctuation do not make a prompt new."""
    return re.sub(r"\s+", " ", text.casefold()).strip(" \t.,;:!?\"'`*")


def novel(
    prompts: list[str], emb: np.ndarray, seen: list[str], seen_emb: np.ndarray, threshold: float
) -> tuple[list[int], int, int]:
    """(indices of prompts to keep, exact duplicates, near duplicates).

    A prompt is dropped when its normalised text equals a seen or earlier kept one, or when its
    cosine similarity (rows are unit vectors, so a dot product) to any of them is >= threshold.
    """
    texts = {normalize(s) for s in seen}
    kept_emb = [np.asarray(seen_emb, dtype=np.float32).reshape(-1, emb.shape[1])] if len(seen_emb) else []
    keep, exact, near = [], 0, 0
    for i, p in enumerate(prompts):
        key = normalize(p)
        if key in texts:
            exact += 1
            continue
        pool = np.concatenate(kept_emb) if kept_emb else np.zeros((0, emb.shape[1]), dtype=np.float32)
        if len(pool) and float((pool @ emb[i]).max()) >= threshold:
            near += 1
            continue
        keep.append(i)
        texts.add(key)
        kept_emb.append(emb[i: i + 1])
    return keep, exact, near
