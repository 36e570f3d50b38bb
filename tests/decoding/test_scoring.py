"""Teacher-forced pair scoring: side by side equals one after the other, and both equal a naive full forward."""

import pytest
import torch

from cdx.decoding import score_rows
from cdx.metrics.divergence import kl

PROMPTS = ["Hello there", "What is the capital of France?", "Ahoy"]


@torch.no_grad()
def _naive(pair, prompt: str, cont: list[int]) -> dict[str, list[float]]:
    """Each row alone, unpadded, full logits: log p of each continuation token and KL(p_s || p_c)."""
    out = {}
    for side, key in ((pair.starting, "s"), (pair.comparison, "c")):
        ids = torch.tensor([side.prompt_ids(prompt) + cont])
        out[key] = torch.log_softmax(side.model(input_ids=ids).logits[0, -len(cont) - 1:-1], -1)
    return {"logp_s": out["s"].gather(-1, torch.tensor(cont)[:, None]).squeeze(-1).tolist(),
            "logp_c": out["c"].gather(-1, torch.tensor(cont)[:, None]).squeeze(-1).tolist(),
            "kl_sc": kl(out["s"], out["c"]).tolist()}


@pytest.mark.parametrize("parallel", [True, False])
def test_pair_scoring_equals_naive_full_forward(tiny_pair, parallel):
    conts = [[40, 41, 42, 43, 44], [50, 51], [60, 61, 62, 63, 64, 65, 66]]
    rows_s = [tiny_pair.starting.prompt_ids(p) for p in PROMPTS]
    rows_c = [tiny_pair.comparison.prompt_ids(p) for p in PROMPTS]
    got = score_rows(tiny_pair, rows_s, rows_c, conts, chunk=3, parallel=parallel)
    for g, p, c in zip(got, PROMPTS, conts):
        ref = _naive(tiny_pair, p, c)
        for k in ("logp_s", "logp_c", "kl_sc"):
            assert g[k] == pytest.approx(ref[k], rel=1e-4, abs=1e-5), k
        assert len(g["js"]) == len(c)
