"""Divergence prompt search: an assistant LLM proposes prompts, contrastive decoding scores them.

`DivergenceFinder` runs the loop; `divergence_weighted_subsample` picks what the assistant sees;
`parse_prompts` reads its replies; `load_instructions` reads a target. See docs/search.md.
"""

from cdx.assistant.replies import parse_prompts, parse_yes_no
from cdx.models.embeddings import SentenceEmbedder
from cdx.search.bank import Bank, BankEntry, BankStore, SearchState
from cdx.search.finder import DivergenceFinder, SearchFailed, cycle_seed
from cdx.search.instructions import Criterion, Instructions, builtin_instructions, load_instructions
from cdx.search.scoring import PromptScorer
from cdx.search.settings import CriterionSettings, SearchSettings, SubsampleSettings
from cdx.search.subsample import (
    SubsampleWeights,
    divergence_weighted_subsample,
    diversity_scores,
    probabilities,
    selection_weights,
)

__all__ = [
    "Bank", "BankEntry", "BankStore", "Criterion", "CriterionSettings", "DivergenceFinder", "Instructions",
    "PromptScorer", "SearchFailed", "SearchSettings", "SearchState", "SentenceEmbedder", "SubsampleSettings",
    "SubsampleWeights", "builtin_instructions", "cycle_seed", "divergence_weighted_subsample", "diversity_scores",
    "load_instructions", "parse_prompts", "parse_yes_no", "probabilities", "selection_weights",
]
