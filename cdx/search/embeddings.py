"""The embedder's old address: configs of earlier runs name `cdx.search.embeddings.SentenceEmbedder`
(`analysis.embedder`, `search.embedder`). It lives in `cdx.models.embeddings` now; this keeps them resolving."""

from cdx.models.embeddings import Embedder, SentenceEmbedder, packaged_model_dir

__all__ = ["Embedder", "SentenceEmbedder", "packaged_model_dir"]
