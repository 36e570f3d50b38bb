"""Divergences and perplexities from logits: pure tensor functions."""

from cdx.metrics.divergence import METRICS, js, kl, token_metrics, weighted_kl
from cdx.metrics.summary import summarize
from cdx.metrics.text import text_metrics

__all__ = ["METRICS", "js", "kl", "summarize", "text_metrics", "token_metrics", "weighted_kl"]
