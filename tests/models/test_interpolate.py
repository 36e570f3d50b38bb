import pytest
import torch

from cdx.models import interpolate, load_pair
from cdx.models.tiny import tiny_model


def test_endpoints_are_exact_and_midpoint_is_the_mean():
    a, b = tiny_model(0), tiny_model(1)
    sa, sb = a.state_dict(), b.state_dict()
    for lam, expect in ((0.0, sa), (1.0, sb)):
        got = interpolate(a, b, lam).state_dict()
        assert all(torch.equal(got[k], expect[k]) for k in sa), lam
    mid = interpolate(a, b, 0.5).state_dict()
    for k in sa:
        if sa[k].is_floating_point():
            torch.testing.assert_close(mid[k], (sa[k] + sb[k]) / 2)


def test_direction_and_extrapolation():
    """theta(lam) = theta_start + lam * (theta_comp - theta_start): lam > 1 goes past the comparison model."""
    a, b = tiny_model(0), tiny_model(1)
    w_a, w_b = a.lm_head.weight, b.lm_head.weight
    torch.testing.assert_close(interpolate(a, b, 1.5).lm_head.weight, w_a + 1.5 * (w_b - w_a))
    torch.testing.assert_close(interpolate(a, b, 0.25).lm_head.weight, w_a + 0.25 * (w_b - w_a))
    torch.testing.assert_close(interpolate(a, b, -0.5).lm_head.weight, w_a - 0.5 * (w_b - w_a))
    assert torch.equal(a.lm_head.weight, w_a) and torch.equal(b.lm_head.weight, w_b)  # inputs untouched


def test_pair_interpolation_divergence_grows_with_lambda():
    from cdx.decoding import ContrastiveDecoder, ProbDiff

    means = []
    for lam in (0.0, 0.5, 1.0):
        pair = load_pair({"path": "tiny-random", "seed": 0}, {"path": "tiny-random", "seed": 1}, interpolation=lam)
        assert pair.interpolation == lam
        dec = ContrastiveDecoder(pair, ProbDiff(1, 0), strategy="greedy", max_new_tokens=5)
        g = [x for b in dec.generate(["Hello", "What is"]) for x in b]
        means.append(sum(sum(x.tokens["kl_sc"]) for x in g))
    assert means[0] == pytest.approx(0.0, abs=1e-6)
    assert means[0] < means[1] < means[2]


def test_mismatched_or_quantized_models_are_refused():
    from transformers import LlamaConfig, LlamaForCausalLM

    a = tiny_model(0)
    other = LlamaForCausalLM(LlamaConfig(vocab_size=320, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    with pytest.raises(ValueError, match="shapes"):
        interpolate(a, other, 0.5)
    b = tiny_model(1)
    b.is_quantized = True
    with pytest.raises(ValueError, match="cannot interpolate the quantized model"):
        interpolate(a, b, 0.5)
