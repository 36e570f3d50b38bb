"""Automated divergence analysis: from two models' texts to validated findings.

Stages (each also a `_target_` object in conf/analysis/, run by `python -m cdx.run task=analyze`):

1. sample      `split_prompts`, `sample_pair`: plain samples of each model (weights (1, 0) and
               (0, 1), i.e. exactly ordinary sampling) and amplified samples in both directions,
               all modes in one decoder batch, each text with both models' per-token log-probs.
2. describe    `describe`: distinctive n-grams (Monroe et al. log-odds with an informative
               Dirichlet prior), behavioural feature rates, prompt clusters with c-TF-IDF labels.
3. hypothesise `hypothesise`: templated statements from the description (+ an assistant's, when
               configured), near-duplicates merged.
4. validate    `validate`: fresh plain samples on held-out prompts, one-sided rate tests with
               Wilson/Newcombe CIs, a likelihood check, Benjamini-Hochberg; then
               `find_behaviours`: validated findings grouped into behaviours (phrase, own
               test, scope, side, size) in behaviours.jsonl.
5. report      `write_findings`, findings.jsonl / analysis.json / analysis.html.

For other tools (organism benchmark, knowledge base, experiment agent):

    from cdx.analysis import Hypothesis, ValidateSettings, build_checker, validate
    h = Hypothesis("talks like a pirate", {"type": "regex", "pattern": r"\\b(arr+|matey|ahoy)\\b"})
    findings = validate(pair, [h], prompts, ValidateSettings(fdr=0.05, min_effect=0.1))
    findings[0].to_record()   # the findings.jsonl schema: rates, CIs, effect, p, q, validated, evidence

`build_checker(dict).check(text) -> bool` rebuilds any checker stored in findings.jsonl.
"""

from cdx.analysis.behaviours import Behaviour, BehaviourSettings, find_behaviours, read_behaviours
from cdx.analysis.checkers import Checker, build_checker
from cdx.analysis.describe import DescribeSettings, describe
from cdx.analysis.features import FEATURES, feature, feature_vector
from cdx.analysis.hypothesise import HypothesiseSettings, hypothesise
from cdx.analysis.pipeline import Analysis, Context, load_findings
from cdx.analysis.quick import quick_summary
from cdx.analysis.report import AnalysisSummary
from cdx.analysis.sampling import MODES, PLAIN, RowwiseRule, SampleSettings, sample_pair, split_prompts
from cdx.analysis.stats import benjamini_hochberg, minimum_detectable_effect, newcombe_ci, rate_test, wilson_ci
from cdx.analysis.types import Finding, Hypothesis
from cdx.analysis.validate import ValidateSettings, validate

__all__ = [
    "FEATURES", "MODES", "PLAIN", "Analysis", "AnalysisSummary", "Behaviour", "BehaviourSettings", "Checker", "Context",
    "DescribeSettings", "Finding", "Hypothesis", "HypothesiseSettings", "RowwiseRule", "SampleSettings",
    "ValidateSettings", "benjamini_hochberg", "build_checker", "describe", "feature", "find_behaviours",
    "read_behaviours", "feature_vector", "hypothesise", "load_findings", "quick_summary", "minimum_detectable_effect",
    "newcombe_ci", "rate_test", "sample_pair", "split_prompts", "validate", "wilson_ci",
]
