import math

import pytest
import torch
from torch.distributions import Categorical, kl_divergence

from cdx.metrics import js, kl, token_metrics, weighted_kl


def _logps(shape=(5, 11), seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(*shape, generator=g) * 2
    b = torch.randn(*shape, generator=g) * 2
    return torch.log_softmax(a, -1), torch.log_softmax(b, -1)


def test_kl_matches_torch_distributions():
    lp, lq = _logps()
    ref = kl_divergence(Categorical(logits=lp), Categorical(logits=lq))
    torch.testing.assert_close(kl(lp, lq), ref)
    m = token_metrics(lp, lq)
    torch.testing.assert_close(m["kl_sc"], ref)
    torch.testing.assert_close(m["kl_cs"], kl_divergence(Categorical(logits=lq), Categorical(logits=lp)))


def test_js_hand_computation():
    p = torch.tensor([0.5, 0.5, 0.0])
    q = torch.tensor([0.0, 0.5, 0.5])
    # m = (.25, .5, .25); KL(p||m) = .5 ln 2 + .5 ln 1 = .5 ln 2; same for q; JS = .5 ln 2
    got = js(p.log(), q.log())
    assert got.item() == pytest.approx(0.5 * math.log(2))
    assert js(p.log(), p.log()).item() == pytest.approx(0.0, abs=1e-7)


def test_zero_probabilities_give_no_nan():
    p = torch.tensor([[1.0, 0.0, 0.0]]).log()
    q = torch.tensor([[0.5, 0.5, 0.0]]).log()
    m = token_metrics(p, q)
    assert m["kl_sc"].item() == pytest.approx(math.log(2))
    assert math.isinf(m["kl_cs"].item())  # q puts mass where p has none: KL(q||p) is infinite
    assert not any(torch.isnan(v).any() for v in m.values())


def test_top1_agreement():
    lp = torch.log_softmax(torch.tensor([[3.0, 1, 0], [0, 3.0, 1]]), -1)
    lq = torch.log_softmax(torch.tensor([[2.0, 1, 0], [3.0, 0, 1]]), -1)
    assert token_metrics(lp, lq)["top1_agree"].tolist() == [1.0, 0.0]


def test_weighted_kl_parity_with_upstream():
    lp, lq = _logps(seed=1)
    torch.testing.assert_close(weighted_kl(lp, lq, 1, -1), kl(lp, lq))
    torch.testing.assert_close(weighted_kl(lp, lq, -1, 1), kl(lq, lp))
    entropy = Categorical(logits=lp).entropy()
    torch.testing.assert_close(weighted_kl(lp, lq, 1, 0), -entropy)
    # other weights: E_p[mix] with p = softmax(mix), computed naively
    mix = 0.5 * lp + 0.5 * lq
    naive = (torch.softmax(mix, -1) * mix).sum(-1)
    torch.testing.assert_close(weighted_kl(lp, lq, 0.5, 0.5), naive)


def test_fused_fast_path_equals_guarded_reference():
    from cdx.metrics.divergence import _token_metrics_guarded

    lp, lq = _logps(shape=(3, 7, 50), seed=4)
    fast, slow = token_metrics(lp, lq, 0.3, 0.7), _token_metrics_guarded(lp, lq, 0.3, 0.7)
    for k in fast:
        torch.testing.assert_close(fast[k], slow[k], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(token_metrics(lp, lq)["weighted_kl"], kl(lp, lq))


def test_large_inputs_take_the_einsum_path_with_the_same_result():
    from cdx.metrics.divergence import _token_metrics_guarded

    lp, lq = _logps(shape=(2, 40, 60_000), seed=6)  # 4.8M elements per side: above the vecdot cut-off
    fast, slow = token_metrics(lp, lq), _token_metrics_guarded(lp, lq, 1.0, -1.0)
    for k in fast:
        torch.testing.assert_close(fast[k], slow[k], atol=2e-5, rtol=1e-4)
