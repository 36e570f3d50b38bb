import math

import numpy as np
import pytest
from scipy import stats

from cdx.metrics import summarize, text_metrics


def _record(i, kl_vals, logp_s, logp_c):
    n = len(kl_vals)
    tokens = {"kl_sc": kl_vals, "kl_cs": [v / 2 for v in kl_vals], "js": [v / 4 for v in kl_vals],
              "top1_agree": [1.0 if v < 0.5 else 0.0 for v in kl_vals], "weighted_kl": kl_vals,
              "logp_s": logp_s[:n], "logp_c": logp_c[:n]}
    return {"id": f"r{i}", "prompt": f"p{i}", "continuation": f"c{i}", "tokens": tokens, "metrics": text_metrics(tokens)}


def test_text_metrics_by_hand():
    rec = _record(0, [0.1, 0.3, 0.8], [-1.0, -2.0, -3.0], [-2.0, -2.0, -2.0])
    m = rec["metrics"]
    assert m["kl_sc_mean"] == pytest.approx(0.4)
    assert m["kl_sc_max"] == pytest.approx(0.8)
    assert m["top1_agree_mean"] == pytest.approx(2 / 3)
    assert m["ppl_s"] == pytest.approx(math.exp(2.0))
    assert m["ppl_c"] == pytest.approx(math.exp(2.0))


def test_summary_statistics_by_hand():
    recs = [_record(0, [0.1, 0.3, 0.8], [-1.0] * 3, [-2.0] * 3), _record(1, [0.2, 0.6], [-0.5] * 2, [-1.0] * 2),
            _record(2, [], [], [])]
    s = summarize(recs, top_n=1)
    vals = np.array([0.1, 0.3, 0.8, 0.2, 0.6])
    tok = s["token"]["kl_sc"]
    assert s["n_texts"] == 3 and s["n_tokens"] == 5
    assert tok["mean"] == pytest.approx(vals.mean())
    half = 1.96 * vals.std(ddof=1) / math.sqrt(5)
    assert tok["ci95_high"] - tok["mean"] == pytest.approx(half)
    assert tok["q90"] == pytest.approx(np.quantile(vals, 0.9))
    assert tok["max"] == pytest.approx(0.8)
    assert s["top1_agreement"] == pytest.approx(3 / 5)
    nll_s = (3 * 1.0 + 2 * 0.5) / 5
    assert s["ppl_s"] == pytest.approx(math.exp(nll_s))
    assert s["ppl_ratio_c_over_s"] == pytest.approx(math.exp((3 * 2.0 + 2 * 1.0) / 5) / math.exp(nll_s))
    text_means = np.array([0.4, 0.4])
    assert s["text"]["kl_sc"]["mean"] == pytest.approx(text_means.mean())
    assert s["top"][0]["id"] in ("r0", "r1")


def test_text_ci_uses_student_t():
    recs = [_record(i, [v], [-1.0], [-1.0]) for i, v in enumerate([0.1, 0.2, 0.4, 0.9])]
    s = summarize(recs)
    x = np.array([0.1, 0.2, 0.4, 0.9])
    lo, hi = stats.t.interval(0.95, 3, loc=x.mean(), scale=x.std(ddof=1) / 2)
    assert s["text"]["kl_sc"]["ci95_low"] == pytest.approx(lo)
    assert s["text"]["kl_sc"]["ci95_high"] == pytest.approx(hi)
