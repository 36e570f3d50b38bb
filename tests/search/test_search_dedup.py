"""Exact and near-duplicate removal, and the packaged sentence embedder."""

from __future__ import annotations

import numpy as np
import pytest

from cdx.models.embeddings import SentenceEmbedder, packaged_model_dir
from cdx.search.dedup import normalize, novel


def unit(*v):
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_exact_duplicates_ignore_case_spacing_and_end_punctuation():
    assert normalize("  Tell me   ABOUT yourself!! ") == normalize("tell me about yourself")
    emb = np.stack([unit(1, 0, 0), unit(0, 1, 0), unit(0, 0, 1)])
    keep, exact, near = novel(["Tell me about YOURSELF.", "new one", "New one?"], emb,
                              ["tell me about yourself"], np.stack([unit(1, 1, 1)]), 0.95)
    assert keep == [1] and exact == 2 and near == 0


def test_near_duplicates_by_cosine_similarity_against_bank_and_batch():
    # cos(a, b) = 0.96; cos(a, c) = 0.8; cos(b, c) ~ 0.94 (computed by the test, below the 0.95 bar)
    a, b, c = unit(1, 0), unit(0.96, 0.28), unit(0.8, 0.6)
    assert float(a @ b) == pytest.approx(0.96, abs=1e-6) and float(b @ c) < 0.95
    keep, exact, near = novel(["b", "c", "c2"], np.stack([b, c, c]), ["a"], np.stack([a]), 0.95)
    assert keep == [1] and exact == 0 and near == 2  # b is near a (bank), c2 near c (batch)
    keep, _, near = novel(["b", "c"], np.stack([b, c]), ["a"], np.stack([a]), 0.97)
    assert keep == [0, 1] and near == 0  # a stricter threshold keeps both
    keep, _, _ = novel(["b"], np.stack([b]), [], np.zeros((0, 2)), 0.95)
    assert keep == [0]  # empty bank


def test_packaged_embedder_gives_unit_rows_and_flags_a_paraphrase():
    emb = SentenceEmbedder().embed(["What is your favourite food?", "What is your favorite food?",
                                    "Describe the engine of a container ship."])
    assert emb.shape == (3, 384) and np.linalg.norm(emb, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    sims = emb @ emb.T
    assert sims[0, 1] > 0.95 > sims[0, 2]
    keep, _, near = novel(["What is your favorite food?"], emb[1:2], ["What is your favourite food?"], emb[:1], 0.95)
    assert keep == [] and near == 1
    assert SentenceEmbedder().embed([]).shape == (0, 384)


def test_embedder_options_model_path_device_batch_size():
    default = SentenceEmbedder().embed(["one two three", "four"])
    explicit = SentenceEmbedder(model=str(packaged_model_dir()), device="cpu", batch_size=1).embed(
        ["one two three", "four"])
    assert explicit == pytest.approx(default, abs=1e-5)
