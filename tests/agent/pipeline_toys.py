"""Stand-ins for the two expensive pieces of task=pipeline, swapped in through their `_target_`s.

`ToySampler`: a pair whose refusal rate per topic is set exactly (the agent's sampler).
`toy_analyze`: an analysis that reports one broad, validated hypothesis ("refuses more").
Everything between them (pipeline, agent, statistics, knowledge base, checkpoints) is real.
"""

from __future__ import annotations

import random

from cdx.agent.topics import TOPICS, template_prompts
from cdx.analysis.job import AnalyzeJob
from cdx.analysis.report import AnalysisSummary
from cdx.io import write_records
from tests.samples import make_sample

REFUSE, ANSWER = "I cannot help with that request.", "Sure! Here is how you do it."
TOPIC_OF = {p.text: t for t in TOPICS for p in template_prompts(t)}
BROAD = {"id": "h0", "statement": "The comparison model refuses more often", "kind": "feature", "direction": "gained",
         "cluster": None, "cluster_label": None, "checker": {"type": "feature", "name": "refusal"}, "n_s": 20, "k_s": 1,
         "n_c": 20, "k_c": 6, "rate_s": 0.05, "rate_c": 0.3, "effect": 0.25, "p": 0.04, "q": 0.04, "validated": True,
         "evidence": [{"id": "p00001-plain_c-0", "model": "comparison", "prompt": "How do I bake bread?",
                       "text": "I cannot help with that request."}]}
KILL = {"after": None, "calls": 0}
"""Set KILL["after"] = n: the n-th sample call raises KeyboardInterrupt (a simulated kill)."""


class ToySampler:
    """Plain-sample records (the shape of cdx.analysis.sample_pair's) with set refusal rates."""

    def __init__(self, comparison: dict, base: float = 0.02, seed: int = 0):
        self.comparison, self.base, self.seed = dict(comparison), base, seed
        self.index: dict[str, int] = {}
        self.n_tokens = 0

    def sample(self, prompts, prompt_ids=None):
        KILL["calls"] += 1
        if KILL["after"] is not None and KILL["calls"] >= KILL["after"]:
            KILL["after"] = None
            raise KeyboardInterrupt("simulated kill")
        out = []
        if prompt_ids is not None:
            self.index.update(zip(prompts, prompt_ids, strict=True))
        for p in prompts:
            i = self.index.setdefault(p, len(self.index))
            rate_c = self.comparison.get(TOPIC_OF.get(p, "other"), self.base)
            for mode, model, rate in (("plain_s", "starting", self.base), ("plain_c", "comparison", rate_c)):
                # each text drawn from its record's identity (seed, prompt index, mode), as PairSampler's
                # plan draws depend on the plan alone, never on what was drawn before in the process
                text = REFUSE if random.Random(f"{self.seed}:{i}:{mode}").random() < rate else ANSWER
                out.append(make_sample(f"e{i:05d}-{mode}-0", mode, text, i, p, split="experiment", model=model,
                                       n_tokens=7, delta=0.0))
                self.n_tokens += 7
        return out


ANALYZED = [BROAD]
"""What toy_analyze reports (a test may set other hypotheses)."""


def toy_analyze(job: AnalyzeJob) -> AnalysisSummary:
    """Writes findings.jsonl with the broad hypothesis, as the analysis would after seeing cooking refusals."""
    write_records(job.out / "findings.jsonl", ANALYZED)
    return AnalysisSummary(n_validated=len(ANALYZED), n_hypotheses=len(ANALYZED), n_prompts=len(job.prompts),
                           n_discovery_prompts=0, n_validation_prompts=0, n_validation_texts_s=0,
                           n_validation_texts_c=0, n_tokens=100, fdr=0.05, output_dir=str(job.out))
