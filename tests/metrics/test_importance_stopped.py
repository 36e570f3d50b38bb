"""Stopped importance weights against a closed-form sequential case: texts are T tokens of a
Markov chain over a small vocabulary, the behaviour is "token 0 is written", and its probability
within T tokens under the target p is computed exactly by dynamic programming over the
not-yet-hit states. The proposal q amplifies token 0 (and every token keeps some mass under q)."""

import numpy as np
import pytest

from cdx.metrics.importance import MIN_EFFECTIVE_HITS, importance_rate, stopped_rate

V, T = 5, 12  # vocabulary, tokens per text; token 0 is the behaviour


def chain(rate_scale, boost, n_prompts=200, seed=0):
    """Per prompt a start distribution; shared transitions. p: token 0 rare; q: p with token 0 boosted."""
    rng = np.random.default_rng(seed)
    start = rng.dirichlet(np.ones(V), size=n_prompts)
    trans = rng.dirichlet(np.ones(V), size=V)
    start[:, 0] *= rate_scale
    trans[:, 0] *= rate_scale
    start /= start.sum(1, keepdims=True)
    trans /= trans.sum(1, keepdims=True)
    p = (start, trans)
    q_start, q_trans = start * _b(boost), trans * _b(boost)
    q = (q_start / q_start.sum(1, keepdims=True), q_trans / q_trans.sum(1, keepdims=True))
    return p, q, exact_rate(p)


def _b(boost):
    return np.array([boost, 1.0, 1.0, 0.7, 1.3])  # token 0 boosted; the others reshuffled a little


def exact_rate(p):
    """P_p(token 0 within T tokens), averaged over prompts: DP over 'no hit yet, last token = v'."""
    start, trans = p
    alive = start.copy()
    alive[:, 0] = 0.0  # mass of texts with no hit after 1 token, by last token
    for _ in range(T - 1):
        alive = alive @ trans
        alive[:, 0] = 0.0
    return float(1.0 - alive.sum(1).mean())


def draw(p, q, seed, n_prompts=100, per_prompt=4):
    """Texts from q: (per text: hit log-weight towards p or None, whole-text log-weight, prompt, hit)."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(rng.integers(0, len(p[0]), n_prompts), per_prompt)
    n = len(rows)
    lw = np.zeros((n, T))
    x = _pick(q[0][rows], rng)
    lw[:, 0] = np.log(p[0][rows, x]) - np.log(q[0][rows, x])
    toks = [x]
    for t in range(1, T):
        x = _pick(q[1][x], rng)
        lw[:, t] = np.log(p[1][toks[-1], x]) - np.log(q[1][toks[-1], x])
        toks.append(x)
    toks = np.stack(toks, 1)  # (n, T)
    hit = (toks == 0).any(1)
    first = np.argmax(toks == 0, axis=1)  # index of the first token 0 (0 when none: masked by hit)
    cum = np.cumsum(lw, 1)
    hit_logw = [float(cum[i, first[i]]) if hit[i] else None for i in range(n)]
    return hit_logw, cum[:, -1], rows, hit


def _pick(probs, rng):
    return (probs.cumsum(1) < rng.random(len(probs))[:, None]).sum(1).clip(max=V - 1)


def test_the_exact_rate_is_right_by_brute_force():
    """The DP against plain simulation from p itself (q = p: all weights 1)."""
    p, _, truth = chain(0.05, 1.0)
    _, _, _, hit = draw(p, p, seed=0, n_prompts=50_000, per_prompt=2)
    assert hit.mean() == pytest.approx(truth, abs=4 * np.sqrt(truth / 100_000))


def test_the_stopped_estimate_converges_to_the_exact_rate():
    p, q, truth = chain(0.003, 20.0)
    hit_logw, full, g, hit = draw(p, q, seed=1, n_prompts=20_000, per_prompt=2)
    r = stopped_rate(hit_logw, g, logw_full=full, n_resamples=200)
    assert r.method == "stopped" and not r.degenerate and truth < 0.02
    assert hit.mean() > 5 * truth  # amplified
    assert r.rate == pytest.approx(truth, rel=0.03)
    assert r.low < truth < r.high


def test_the_interval_covers_the_exact_rate_at_about_the_nominal_rate():
    p, q, truth = chain(0.003, 20.0)
    runs = []
    for s in range(200):
        hit_logw, full, g, _ = draw(p, q, seed=s)
        runs.append(stopped_rate(hit_logw, g, logw_full=full, n_resamples=1000, seed=s))
    ok = [r for r in runs if not r.degenerate]
    assert len(ok) == 200
    cov = np.mean([r.low <= truth <= r.high for r in ok])
    assert 0.90 <= cov <= 0.99  # measured 0.965 (0.955 with the bootstrap alone; median 94 effective hits of 400 texts)


def test_stopped_weights_need_far_fewer_texts_than_plain_sampling_and_than_whole_text_weights():
    """Per-text variance of the three estimators of the same rate (texts needed for one relative
    error scale with it): plain r(1 - r), stopped Var_q(1{hit} W_tau), whole-text SNIS from its ESS."""
    p, q, truth = chain(0.003, 20.0)
    hit_logw, full, g, hit = draw(p, q, seed=2, n_prompts=20_000, per_prompt=1)
    y = np.array([0.0 if v is None else np.exp(v) for v in hit_logw])
    plain_var, stopped_var = truth * (1 - truth), y.var()
    assert plain_var / stopped_var > 5  # measured 16.9x at a true rate of 0.018
    snis = importance_rate(hit, full, np.zeros_like(full), g, n_resamples=50)
    assert snis.ess < 0.5 * len(y)  # whole-text weights over 12 tokens keep 0.47 of the texts


def test_plain_samples_give_the_plain_rate():
    hit_logw = [0.0 if i % 4 == 0 else None for i in range(400)]
    r = stopped_rate(hit_logw, np.arange(400) // 2)
    assert r.rate == 0.25 and r.ess == pytest.approx(100) and r.n_hits == 100 and r.n_groups == 200
    assert r.low < 0.25 < r.high and r.high - r.low < 0.12


def test_too_few_effective_hits_are_refused_with_what_to_do():
    hit_logw = [None] * 300
    for i, v in enumerate([5.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]):  # one hit carries nearly all the weight
        hit_logw[i * 10] = v
    r = stopped_rate(hit_logw)
    assert r.degenerate and r.rate is None and r.method == "refused"
    assert r.ess < MIN_EFFECTIVE_HITS and "7 hits in 7 prompts" in r.message and "raise alpha" in r.message
    none = stopped_rate([None] * 50)
    assert none.degenerate and none.ess == 0.0 and none.n_hits == 0


def test_a_proposal_that_cannot_draw_part_of_the_target_widens_the_interval():
    """Whole-text weights averaging well below 1: the covered mass says so and widens the interval."""
    hit_logw = [0.0 if i % 5 == 0 else None for i in range(500)]
    r = stopped_rate(hit_logw, logw_full=np.full(500, np.log(0.6)))
    assert r.covered_mass == pytest.approx(0.6) and r.high == pytest.approx(min(1.0, 0.4 + 0.6 * r.high / 0.6), abs=0.5)
    assert r.low < 0.2 * 0.6 + 1e-9 and r.high > 0.4 and "plausibility_beta=0" in r.message


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="one value per text"):
        stopped_rate([0.0, None], [1])
    with pytest.raises(ValueError, match=r"\+inf"):
        stopped_rate([np.inf, None])


def test_the_difference_test_holds_its_level_under_the_null_and_has_power():
    """Both sides sampled from tilted copies of the same p (H0 true): p < 0.05 in about 5% of 300
    simulations; with the comparison model's rate raised 1.6x it rejects far more often."""
    from cdx.metrics.importance import stopped_rate_difference

    p, q, truth = chain(0.003, 20.0)
    p_hi, q_hi, truth_hi = chain(0.005, 20.0)
    assert truth_hi > 1.5 * truth

    def sides(pc, qc, seed):
        a, _, ga, _ = draw(pc, qc, seed=2 * seed, n_prompts=100, per_prompt=4)
        b, _, gb, _ = draw(p, q, seed=2 * seed + 1, n_prompts=100, per_prompt=4)
        return stopped_rate_difference(a, ga, b, gb)

    null = [sides(p, q, s) for s in range(300)]
    level = np.mean([r.p < 0.05 for r in null])
    assert 0.02 <= level <= 0.09  # measured 0.067 (300 simulations: 0.05 +- 0.013)
    assert np.mean([r.low <= 0 <= r.high for r in null]) == pytest.approx(1 - level, abs=1e-9)
    power = np.mean([sides(p_hi, q_hi, s).p < 0.05 for s in range(100)])
    assert power > 0.5  # measured 0.72; Fisher on as many plain texts (400 a side): 0.13


def test_the_difference_test_refuses_too_few_shared_prompts():
    from cdx.metrics.importance import stopped_rate_difference

    with pytest.raises(ValueError, match="at least 2"):
        stopped_rate_difference([0.0, None], [1, 1], [None, 0.0], [2, 2])
    none = stopped_rate_difference([None] * 4, [1, 1, 2, 2], [None] * 4, [1, 1, 2, 2])
    assert (none.diff, none.p) == (0.0, 1.0)
