"""The experiment agent: designs the next experiment for each open hypothesis and decides on it.

    agent = ExperimentAgent(PairSampler(pair), PromptDesigner(), AgentSettings(topics=[...]), kb, pair_id, run_id)
    decision = agent.step(hypothesis)      # confirm | narrow | split | reject | inconclusive, with its reason
    agent.replicate(known_finding)         # a brief re-test: replicated | not_replicated

Prompts come from built-in topic templates (paraphrases and counterfactual variants, no API key),
the run's clusters and search bank, and an assistant when one is configured (cdx.agent.design).
Sample sizes come from a power calculation (statsmodels) for the effect seen so far (cdx.agent.stats).
"""

from cdx.agent.agent import ACTIONS, AgentSettings, ExperimentAgent
from cdx.agent.design import PromptDesigner
from cdx.agent.sampler import PairSampler, RecordedSampler, Sampler
from cdx.agent.stats import bh, interaction_p, rate_test, sample_size
from cdx.agent.topics import TEMPLATES, TOPICS, TopicPrompt, counterfactuals, template_prompts

__all__ = [
    "ACTIONS", "AgentSettings", "ExperimentAgent", "PairSampler", "PromptDesigner", "RecordedSampler", "Sampler",
    "TEMPLATES", "TOPICS", "TopicPrompt", "bh", "counterfactuals", "interaction_p", "rate_test", "sample_size", "template_prompts",
]
