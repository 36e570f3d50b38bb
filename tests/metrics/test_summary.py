import math

import numpy as np
import pytest
from scipy import stats

from cdx.io.records import Direction
from cdx.metrics import summarize, text_metrics
from cdx.metrics.summary import CI_METHOD, cluster_bootstrap_ci, resolve_sort_key, shown
from cdx.metrics.text import text_value


def _record(i, kl_vals, logp_s, logp_c, prompt_index=None, continuation=None):
    n = len(kl_vals)
    tokens = {"kl_sc": kl_vals, "kl_cs": [v / 2 for v in kl_vals], "js": [v / 4 for v in kl_vals],
              "top1_agree": [1.0 if v < 0.5 else 0.0 for v in kl_vals], "weighted_kl": kl_vals,
              "logp_s": logp_s[:n], "logp_c": logp_c[:n]}
    rec = {"id": f"r{i}", "prompt": f"p{i if prompt_index is None else prompt_index}",
           "continuation": continuation or f"c{i}", "tokens": tokens, "metrics": text_metrics(tokens)}
    if prompt_index is not None:
        rec["prompt_index"] = prompt_index
    return rec


def test_text_metrics_by_hand():
    rec = _record(0, [0.1, 0.3, 0.8], [-1.0, -2.0, -3.0], [-2.0, -2.0, -2.0])
    m = rec["metrics"]
    assert m["kl_sc_mean"] == pytest.approx(0.4)
    assert m["kl_sc_max"] == pytest.approx(0.8)
    assert m["top1_agree_mean"] == pytest.approx(2 / 3)
    assert m["ppl_s"] == pytest.approx(math.exp(2.0))
    assert m["ppl_c"] == pytest.approx(math.exp(2.0))


def test_contrast_scores_by_hand_and_rebuilt_for_old_records():
    rec = _record(0, [0.1, 0.2], [-3.0, -5.0], [-1.0, -2.0])  # mean log p_s = -4, mean log p_c = -1.5
    m = rec["metrics"]
    assert m["llr_cs_mean"] == pytest.approx(2.5)
    assert m["contrast_c"] == pytest.approx(-1.5 + 2.5)
    assert m["contrast_s"] == pytest.approx(-4.0 - 2.5)
    old = {"metrics": {k: v for k, v in m.items() if k not in ("llr_cs_mean", "contrast_c", "contrast_s")}}
    for key in ("llr_cs_mean", "contrast_c", "contrast_s"):
        assert text_value(old, key) == pytest.approx(m[key])
    assert text_value(old, "no_such_metric") == float("-inf")


def test_summary_statistics_by_hand():
    recs = [_record(0, [0.1, 0.3, 0.8], [-1.0] * 3, [-2.0] * 3), _record(1, [0.2, 0.6], [-0.5] * 2, [-1.0] * 2),
            _record(2, [], [], [])]
    s = summarize(recs, sort_key="kl_sc_mean", top_n=1).dump()  # as summary.json holds it
    vals = np.array([0.1, 0.3, 0.8, 0.2, 0.6])
    tok = s["token"]["kl_sc"]
    assert s["n_texts"] == 3 and s["n_tokens"] == 5
    assert tok["mean"] == pytest.approx(vals.mean())
    # both texts have mean 0.4, so every resample of whole texts has pooled mean 0.4: a zero-width
    # interval, where the old token-pooled normal interval claimed +-0.256
    assert tok["ci95_low"] == pytest.approx(0.4) and tok["ci95_high"] == pytest.approx(0.4)
    assert s["ci_method"]["token"] == CI_METHOD
    assert tok["q90"] == pytest.approx(np.quantile(vals, 0.9))
    assert tok["max"] == pytest.approx(0.8)
    assert s["top1_agreement"] == pytest.approx(3 / 5)
    nll_s = (3 * 1.0 + 2 * 0.5) / 5
    assert s["ppl_s"] == pytest.approx(math.exp(nll_s))
    assert s["ppl_ratio_c_over_s"] == pytest.approx(math.exp((3 * 2.0 + 2 * 1.0) / 5) / math.exp(nll_s))
    assert s["text"]["kl_sc"]["mean"] == pytest.approx(0.4)
    assert s["top"][0]["id"] in ("r0", "r1")


def test_text_ci_uses_student_t():
    recs = [_record(i, [v], [-1.0], [-1.0]) for i, v in enumerate([0.1, 0.2, 0.4, 0.9])]
    s = summarize(recs).dump()
    x = np.array([0.1, 0.2, 0.4, 0.9])
    lo, hi = stats.t.interval(0.95, 3, loc=x.mean(), scale=x.std(ddof=1) / 2)
    assert s["text"]["kl_sc"]["ci95_low"] == pytest.approx(lo)
    assert s["text"]["kl_sc"]["ci95_high"] == pytest.approx(hi)


def _clustered(n_prompts=12, texts=2, tokens=20, seed=0):
    """Texts whose tokens share a per-prompt level: strong within-prompt correlation."""
    rng = np.random.default_rng(seed)
    recs, i = [], 0
    for p in range(n_prompts):
        level = rng.gamma(2.0, 0.5)
        for _ in range(texts):
            vals = list(level + 0.05 * rng.standard_normal(tokens))
            recs.append(_record(i, vals, [-1.0] * tokens, [-1.5] * tokens, prompt_index=p))
            i += 1
    return recs


def test_token_ci_matches_scipy_cluster_bootstrap_and_is_wider_than_pooled():
    recs = _clustered()
    s = summarize(recs).dump()
    tok = s["token"]["kl_sc"]
    sums = np.array([sum(sum(r["tokens"]["kl_sc"]) for r in recs if r["prompt_index"] == p) for p in range(12)])
    counts = np.array([sum(len(r["tokens"]["kl_sc"]) for r in recs if r["prompt_index"] == p) for p in range(12)])
    ref = stats.bootstrap((np.arange(12),), lambda idx, axis=-1: sums[idx].sum(axis) / counts[idx].sum(axis),
                          n_resamples=4000, method="percentile", random_state=1, vectorized=True)
    assert tok["ci95_low"] == pytest.approx(ref.confidence_interval.low, rel=0.08)
    assert tok["ci95_high"] == pytest.approx(ref.confidence_interval.high, rel=0.08)
    pooled = np.concatenate([r["tokens"]["kl_sc"] for r in recs])
    naive_half = 1.96 * pooled.std(ddof=1) / math.sqrt(pooled.size)
    assert (tok["ci95_high"] - tok["ci95_low"]) / 2 > 3 * naive_half  # 480 tokens, but only 12 prompts


def test_cluster_bootstrap_with_one_value_per_cluster_is_the_usual_interval():
    x = np.random.default_rng(3).normal(1.0, 2.0, 400)
    lo, hi = cluster_bootstrap_ci(x, np.ones_like(x))
    half = 1.96 * x.std(ddof=0) / math.sqrt(x.size)
    assert (hi - lo) / 2 == pytest.approx(half, rel=0.1)
    assert lo < x.mean() < hi
    assert all(math.isnan(v) for v in cluster_bootstrap_ci(np.array([1.0]), np.array([3.0])))


def test_direction_from_the_rule_and_auto_sort_key():
    recs = [_record(0, [0.1], [-1.0], [-3.0]), _record(1, [0.2], [-3.0], [-1.0])]
    s = summarize(recs, direction=Direction(shows="comparison",
                                            description="text the comparison model would write")).dump()
    assert s["direction"]["source"] == "rule" and s["sort_key"] == "contrast_c"
    assert [t["id"] for t in s["top"]] == ["r1", "r0"]  # r1 is the comparison model's text
    assert "text the comparison model would write" in s["ppl_ratio_note"]
    s = summarize(recs, direction=Direction(shows="starting", description="x")).dump()
    assert s["sort_key"] == "contrast_s" and s["top"][0]["id"] == "r0"
    assert summarize(recs, sort_key="kl_sc_mean").sort_key == "kl_sc_mean"


def test_direction_measured_when_no_rule_wrote_the_texts():
    comp = [_record(i, [0.1], [-4.0], [-1.0]) for i in range(3)]
    s = summarize(comp).dump()
    assert s["direction"]["source"] == "measured" and s["direction"]["shows"] == "comparison"
    assert s["ppl_ratio_c_over_s"] < 1
    start = [_record(i, [0.1], [-1.0], [-4.0]) for i in range(3)]
    d = summarize(start).direction
    assert d is not None and (d.shows, d.source) == ("starting", "measured")
    assert resolve_sort_key("auto", "both") == "contrast_c"


def test_identical_samples_are_shown_once_with_their_count():
    recs = [_record(i, [0.5 + i / 100], [-1.0], [-1.0], prompt_index=0, continuation="same") for i in range(3)]
    recs.append(_record(9, [0.1], [-1.0], [-1.0], prompt_index=0, continuation="other"))
    recs.append(_record(8, [0.9], [-1.0], [-1.0], prompt_index=1, continuation="same"))  # other prompt: kept
    got = shown(recs, "kl_sc_mean")
    assert [(r["id"], n) for r, n in got] == [("r8", 1), ("r2", 3), ("r9", 1)]
    s = summarize(recs, sort_key="kl_sc_mean", top_n=5).dump()
    assert [(t["id"], t["copies"]) for t in s["top"]] == [("r8", 1), ("r2", 3), ("r9", 1)]
