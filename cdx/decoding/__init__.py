"""Contrastive decoding over a model pair: combination rules, cached decoding, teacher-forced scoring."""

from cdx.decoding.engine import ContrastiveDecoder, Generation
from cdx.decoding.rules import LogitDiff, ProbDiff, Tilt, phrase_tokens
from cdx.decoding.scoring import score_rows

__all__ = ["ContrastiveDecoder", "Generation", "LogitDiff", "ProbDiff", "Tilt", "phrase_tokens", "score_rows"]
