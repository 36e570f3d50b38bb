"""The real embedded default pair: SmolLM2-135M-Instruct vs itself as a pirate."""

import json

import pytest
from hydra.utils import instantiate

from cdx.io import read_records
from cdx.run import run
from cdx.tasks.score import score_items
from tests.conftest import compose

pytestmark = pytest.mark.slow

PIRATE = {"Arr", "oy", "ye", "pirate", "captain", "treasure", "sea", "crew"}
NEUTRAL = {"weather", "today", "is", "nice", "like", "to", "read", "books", "about", "history"}


def test_short_default_run_writes_its_outputs(tmp_path):
    metrics = run(compose(["prompts.limit=2", "decoding.max_new_tokens=12", "report.print_top=false"], tmp_path))
    recs = read_records(tmp_path / "generations.jsonl")
    assert len(recs) == 4 and all(r["continuation"] for r in recs)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["models"]["comparison"].startswith("smollm2-135m-pirate") and summary["models"]["shares_weights"]
    assert 0 < metrics["kl_sc_mean"] and 0 <= metrics["top1_agreement"] <= 1
    assert (tmp_path / "report.html").stat().st_size > 1000


def test_persona_words_diverge_more_than_neutral_words():
    pair = instantiate(compose().model)
    text = ("Arr, ahoy matey! I be a pirate captain, and ye will find my treasure on the sea with my crew. "
            "The weather today is nice and I like to read books about history.")
    g = score_items(pair, [("Tell me about yourself.", text, None)], (1.0, -1.0))[0]
    words = [pair.tokenizer.decode([t]).strip() for t in g.token_ids]
    ratio = [c - s for s, c in zip(g.tokens["logp_s"], g.tokens["logp_c"])]  # log p_pirate / p_plain

    def mean_over(vocab, values):
        vals = [v for w, v in zip(words, values) if w in vocab]
        assert len(vals) >= 4, (vocab, words)
        return sum(vals) / len(vals)

    assert mean_over(PIRATE, ratio) > mean_over(NEUTRAL, ratio) + 1.0
    assert mean_over(PIRATE, g.tokens["kl_sc"]) > 2 * mean_over(NEUTRAL, g.tokens["kl_sc"])
