"""divergence_weighted_subsample against hand computations on a 3-entry bank."""

from __future__ import annotations

import math
from fractions import Fraction as F

import numpy as np
import pytest

from cdx.search.subsample import (
    SubsampleWeights,
    divergence_weighted_subsample,
    diversity_scores,
    minmax,
    probabilities,
    selection_weights,
    stats,
)

# Three points with pairwise distances 3 (e1-e2), 4 (e1-e3), 5 (e2-e3).
EMB = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
DIV = np.array([1.0, 3.0, 2.0])


def test_harmonic_diversity_is_the_harmonic_mean_of_distances_to_the_others():
    hand = [2 / (F(1, 3) + F(1, 4)), 2 / (F(1, 3) + F(1, 5)), 2 / (F(1, 4) + F(1, 5))]  # 24/7, 15/4, 40/9
    assert diversity_scores(EMB, "harmonic") == pytest.approx([float(x) for x in hand], rel=1e-7)


def test_nearest_diversity_is_the_distance_to_the_nearest_other():
    assert diversity_scores(EMB, "nearest") == pytest.approx([3.0, 3.0, 4.0])


def test_diversity_of_fewer_than_two_entries_is_zero_and_unknown_method_is_an_error():
    assert diversity_scores(EMB[:1]).tolist() == [0.0]
    with pytest.raises(ValueError, match="harmonic"):
        diversity_scores(EMB, "cosine")


def test_selection_weights_by_hand():
    h = diversity_scores(EMB, "harmonic")
    hand_h = [F(0), (F(15, 4) - F(24, 7)) / (F(40, 9) - F(24, 7)), F(1)]  # min-max of h
    hand_d = [F(0), F(1), F(1, 2)]  # min-max of (1, 3, 2)
    raw = [d + x for d, x in zip(hand_d, hand_h)]
    hand_w = [(r - min(raw)) / (max(raw) - min(raw)) for r in raw]
    w = selection_weights(DIV, h, np.zeros(3), SubsampleWeights(1.0, 1.0, 0.0))
    assert w == pytest.approx([float(x) for x in hand_w])
    # the criterion term is added raw (0/1), before the final min-max
    w_c = selection_weights(DIV, h, np.array([1.0, 0.0, 0.0]), SubsampleWeights(1.0, 0.0, 2.0))
    raw_c = [0 + 2, 1 + 0, F(1, 2) + 0]  # min 1/2, max 2
    assert w_c == pytest.approx([float((r - F(1, 2)) / F(3, 2)) for r in raw_c])


def test_equal_values_give_zero_weights_and_uniform_probabilities_not_nan():
    w = selection_weights(np.ones(4), np.ones(4), np.zeros(4), SubsampleWeights())
    assert w.tolist() == [0.0] * 4
    assert probabilities(w, 0.5) == pytest.approx([0.25] * 4)
    assert minmax(np.array([])).size == 0


def test_probabilities_are_a_softmax_of_w_over_t():
    w = np.array([0.0, 0.5, 1.0])
    z = [math.exp(x / 0.5) for x in w]
    assert probabilities(w, 0.5) == pytest.approx([x / sum(z) for x in z])
    z_low = [math.exp(-x / 0.5) for x in w]
    assert probabilities(w, 0.5, select_high=False) == pytest.approx([x / sum(z_low) for x in z_low])
    with pytest.raises(ValueError):
        probabilities(w, 0.0)


def test_draw_frequencies_match_successive_sampling_without_replacement():
    weights = SubsampleWeights(1.0, 1.0, 0.0)
    w = selection_weights(DIV, diversity_scores(EMB), np.zeros(3), weights)
    pi = probabilities(w, 0.5)
    rng = np.random.default_rng(0)
    n = 5000
    singles = np.zeros(3)
    pairs: dict[frozenset, int] = {}
    for _ in range(n):
        one = divergence_weighted_subsample(DIV, EMB, np.zeros(3), 1, 0.5, weights, rng)
        singles[one.indices[0]] += 1
        two = divergence_weighted_subsample(DIV, EMB, np.zeros(3), 2, 0.5, weights, rng)
        key = frozenset(two.indices.tolist())
        pairs[key] = pairs.get(key, 0) + 1
    assert singles / n == pytest.approx(pi, abs=0.03)
    for i in range(3):
        for j in range(i + 1, 3):
            # P({i, j}) = pi_i pi_j / (1 - pi_i) + pi_j pi_i / (1 - pi_j)
            hand = pi[i] * pi[j] / (1 - pi[i]) + pi[j] * pi[i] / (1 - pi[j])
            assert pairs.get(frozenset((i, j)), 0) / n == pytest.approx(hand, abs=0.03)


def test_subsample_is_sorted_by_divergence_and_diversity_stays_aligned():
    rng = np.random.default_rng(1)
    sub = divergence_weighted_subsample(DIV, EMB, np.zeros(3), 3, 0.5, SubsampleWeights(), rng)
    assert sub.indices.tolist() == [1, 2, 0]  # divergences 3, 2, 1
    assert sub.diversity == pytest.approx(diversity_scores(EMB))  # per entry, not per sorted row


def test_zero_temperature_takes_the_top_n_by_weight():
    # upstream crashed here (n_samples referenced before assignment)
    sub = divergence_weighted_subsample(DIV, EMB, np.zeros(3), 2, 0.0, SubsampleWeights(1.0, 0.0, 0.0),
                                        np.random.default_rng(0))
    assert sub.indices.tolist() == [1, 2] and sub.probabilities is None
    low = divergence_weighted_subsample(DIV, EMB, np.zeros(3), 1, 0.0, SubsampleWeights(1.0, 0.0, 0.0),
                                        np.random.default_rng(0), select_high=False)
    assert low.indices.tolist() == [0]


def test_size_larger_than_bank_and_empty_bank():
    sub = divergence_weighted_subsample(DIV, EMB, np.zeros(3), 10, 0.5, SubsampleWeights(), np.random.default_rng(0))
    assert sorted(sub.indices.tolist()) == [0, 1, 2]
    empty = divergence_weighted_subsample(np.zeros(0), np.zeros((0, 2)), np.zeros(0), 5, 0.5, SubsampleWeights(),
                                          np.random.default_rng(0))
    assert empty.indices.size == 0


def test_stats_are_mean_population_std_max_min():
    s = stats([1.0, 2.0, 6.0])
    assert s == pytest.approx({"mean": 3.0, "std": math.sqrt((4 + 1 + 9) / 3), "max": 6.0, "min": 1.0})
    assert stats([]) == {"mean": 0.0, "std": 0.0, "max": 0.0, "min": 0.0}
