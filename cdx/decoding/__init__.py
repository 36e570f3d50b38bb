"""Contrastive decoding over a model pair: combination rules, cached decoding, teacher-forced scoring."""

from cdx.decoding.engine import ContrastiveDecoder, Generation
from cdx.decoding.rules import LogitDiff, ProbDiff, Rule, Tilt, phrase_tokens
from cdx.decoding.scoring import score_rows
from cdx.io.settings import DecodeSettings

__all__ = ["ContrastiveDecoder", "DecodeSettings", "Generation", "LogitDiff", "ProbDiff", "Rule", "Tilt",
           "phrase_tokens", "score_rows"]
