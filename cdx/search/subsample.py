"""Which past prompts the assistant sees: `divergence_weighted_subsample` and the diversity scores.

Upstream's maths (docs/search.md has the derivation), without its bugs: equal values min-max to
0 instead of NaN, temperature <= 0 takes the top-n instead of crashing, the diversity scores stay
aligned with the entries, and the criterion and diversity terms are switched by their weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

DIVERSITY_METHODS = ("harmonic", "nearest")


def minmax(x: np.ndarray) -> np.ndarray:
    """(x - min) / (max - min); zeros when all values are equal (or there are none)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    span = x.max() - x.min()
    return np.zeros_like(x) if span <= 1e-12 else (x - x.min()) / span


def pairwise_distances(emb: np.ndarray) -> np.ndarray:
    """Euclidean distances (N, N) between the rows of emb (N, D)."""
    sq = (emb * emb).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * emb @ emb.T
    return np.sqrt(np.clip(d2, 0.0, None))


def diversity_scores(emb: np.ndarray, method: str = "harmonic", eps: float = 1e-8) -> np.ndarray:
    """How far each entry lies from the others, (N,); zeros for fewer than two entries.

    harmonic: h_i = (N-1) / sum_{j != i} 1/(D_ij + eps), the harmonic mean of the distances to the
        other entries (upstream computed N/sum, the same up to the factor N/(N-1)).
    nearest:  min_{j != i} D_ij, the distance to the nearest other entry.
    """
    if method not in DIVERSITY_METHODS:
        raise ValueError(f"diversity={method!r} is not valid; use one of {DIVERSITY_METHODS}")
    n = len(emb)
    if n < 2:
        return np.zeros(n)
    dist = pairwise_distances(np.asarray(emb, dtype=np.float64))
    off = ~np.eye(n, dtype=bool)
    if method == "nearest":
        return np.where(off, dist, np.inf).min(1)
    inv = np.where(off, 1.0 / (dist + eps), 0.0)
    return (n - 1) / inv.sum(1)


@dataclass
class SubsampleWeights:
    divergence: float = 1.0
    diversity: float = 1.0
    criterion: float = 0.0


def selection_weights(
    divergence: np.ndarray, diversity: np.ndarray, criterion: np.ndarray, weights: SubsampleWeights
) -> np.ndarray:
    """w = minmax(a * minmax(d) + c * s + b * minmax(h)), each term in [0, 1] before weighting."""
    w = weights.divergence * minmax(divergence)
    if weights.criterion:
        w = w + weights.criterion * np.asarray(criterion, dtype=np.float64)
    if weights.diversity:
        w = w + weights.diversity * minmax(diversity)
    return minmax(w)


def probabilities(w: np.ndarray, temperature: float, select_high: bool = True) -> np.ndarray:
    """pi_i = exp(+-w_i / T) / sum_j exp(+-w_j / T); with w in [0, 1], max/min ratio is exp(1/T)."""
    if temperature <= 0:
        raise ValueError("temperature <= 0 has no probabilities: the subsample is the top-n")
    z = (w if select_high else -w) / temperature
    z = np.exp(z - z.max())
    return z / z.sum()


@dataclass
class Subsample:
    indices: np.ndarray
    """Chosen entries, sorted by divergence, highest first."""
    weights: np.ndarray
    """w_i of every entry (N,)."""
    probabilities: np.ndarray | None
    """pi_i of every entry (N,), None for temperature <= 0."""
    diversity: np.ndarray
    """h_i of every entry (N,), aligned with the entries (upstream's were in pre-sort order)."""


def divergence_weighted_subsample(
    divergence: np.ndarray,
    embeddings: np.ndarray,
    criterion: np.ndarray,
    size: int,
    temperature: float,
    weights: SubsampleWeights,
    rng: np.random.Generator,
    select_high: bool = True,
    diversity: str = "harmonic",
) -> Subsample:
    """Draw min(size, N) entries without replacement with probability pi (top-n when T <= 0)."""
    divergence = np.asarray(divergence, dtype=np.float64)
    n_all = len(divergence)
    h = diversity_scores(embeddings, diversity) if n_all else np.zeros(0)
    w = selection_weights(divergence, h, criterion, weights)
    n = min(size, n_all)
    if n <= 0:
        return Subsample(np.zeros(0, dtype=int), w, None, h)
    if temperature > 0:
        pi = probabilities(w, temperature, select_high)
        idx = rng.choice(n_all, size=n, replace=False, p=pi)
    else:
        pi = None
        order = np.argsort(-w if select_high else w, kind="stable")
        idx = order[:n]
    idx = idx[np.argsort(-divergence[idx], kind="stable")]
    return Subsample(idx, w, pi, h)


def stats(x: ArrayLike) -> dict[str, float]:
    """mean, std (population, as upstream), max, min; NaN-free for empty input."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return {"mean": 0.0, "std": 0.0, "max": 0.0, "min": 0.0}
    return {"mean": float(x.mean()), "std": float(x.std()), "max": float(x.max()), "min": float(x.min())}
