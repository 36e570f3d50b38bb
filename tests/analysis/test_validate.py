"""validate() on given held-out samples: counts, tests, BH, clusters, evidence, likelihood check."""

import random

import pytest
from scipy import stats as sst

from cdx.analysis import Finding, Hypothesis, ValidateSettings, build_checker, validate
from cdx.analysis.validate import likelihood_check
from tests.samples import make_sample


def sample(i, mode, text, delta=0.0):
    return make_sample(f"v{i:05d}-{mode}-0", mode, text, i, f"p{i}", model="comparison" if mode == "plain_c" else "starting",
                       delta=delta, n_tokens=5)


def held_out(n=60, rate_c=0.5, rate_s=0.0, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        out.append(sample(i, "plain_s", "arr matey" if rng.random() < rate_s else "hello there", -0.1))
        hit = rng.random() < rate_c
        out.append(sample(i, "plain_c", "arr matey" if hit else "hello there", 0.5 if hit else 0.1))
    return out


PIRATE = Hypothesis("says arr", {"type": "string", "value": "arr"})


def test_counts_and_p_match_a_direct_fisher_test():
    samples = held_out()
    f = validate(None, [PIRATE], samples=samples)[0]
    k_c = sum(s.text.startswith("arr") for s in samples if s.mode == "plain_c")
    assert (f.n_s, f.k_s, f.n_c, f.k_c) == (60, 0, 60, k_c)
    p = sst.fisher_exact([[k_c, 60 - k_c], [0, 60]], alternative="greater").pvalue
    assert f.p == pytest.approx(p) and f.q == pytest.approx(p) and f.validated
    assert f.evidence and all(e.model == "comparison" and "arr" in e.text for e in f.evidence)
    assert f.likelihood.agrees and f.likelihood.delta > 0


def test_no_difference_is_not_validated_and_says_why():
    f = validate(None, [PIRATE], samples=held_out(rate_c=0.2, rate_s=0.2))[0]
    assert not f.validated and f.reason


def test_wrong_direction_is_not_validated():
    lost = Hypothesis("says arr less", {"type": "string", "value": "arr"}, direction="lost")
    f = validate(None, [lost], samples=held_out())[0]
    assert not f.validated and f.p > 0.5


def test_min_effect_gates_a_significant_but_small_difference():
    s = ValidateSettings(min_effect=0.6)
    f = validate(None, [PIRATE], samples=held_out(n=200, rate_c=0.4), settings=s)[0]
    assert f.q < 0.05 and not f.validated and "minimum" in f.reason


def test_benjamini_hochberg_runs_over_all_hypotheses():
    noise = [Hypothesis(f"says {w}", {"type": "string", "value": w}) for w in ("hello", "there", "matey")]
    fs = validate(None, [PIRATE, *noise], samples=held_out())
    ps = [f.p for f in fs]
    assert [f.q for f in fs] == pytest.approx(list(sst.false_discovery_control(ps)))


def test_cluster_hypothesis_uses_only_its_prompts():
    samples = held_out(n=40)
    clusters = {i: i % 2 for i in range(40)}
    h = Hypothesis("says arr on odd prompts", {"type": "string", "value": "arr"}, cluster=1)
    f = validate(None, [h], samples=samples, prompt_clusters=clusters)[0]
    assert f.n_s == f.n_c == 20


def test_too_few_texts_is_untestable():
    f = validate(None, [PIRATE], samples=held_out(n=5))[0]
    assert not f.validated and "too few" in f.reason and f.p == 1.0


def test_mcnemar_pairs_by_prompt():
    f = validate(None, [PIRATE], samples=held_out(), settings=ValidateSettings(test="mcnemar"))[0]
    assert f.validated


def test_likelihood_check_centres_each_model():
    # every comparison text scores higher only because p_c wrote it: no behaviour effect remains
    texts = [sample(i, m, "arr" if m == "plain_c" else "no", 1.0 if m == "plain_c" else 0.0)
             for i in range(20) for m in ("plain_s", "plain_c")]
    hits = {t.id: t.mode == "plain_c" for t in texts}
    lk = likelihood_check(texts, hits, "gained")
    assert lk.delta == pytest.approx(0.0) and not lk.agrees  # uncentred it would be +1.0
    # within the starting model's own texts, those showing it score higher under p_c: that counts
    texts += [sample(100 + i, "plain_s", "arr", 0.8) for i in range(5)]
    hits.update({t.id: "arr" in t.text for t in texts})
    lk = likelihood_check(texts, hits, "gained")
    assert lk.agrees and lk.p < 0.01


def test_finding_record_round_trips_and_checker_rebuilds():
    f = validate(None, [PIRATE], samples=held_out())[0]
    r = f.to_record()
    for key in ("id", "statement", "kind", "direction", "cluster", "checker", "n_s", "k_s", "n_c", "k_c", "rate_s",
                "rate_c", "rate_s_ci", "rate_c_ci", "effect", "effect_ci", "p", "q", "validated", "evidence",
                "discovery"):
        assert key in r
    assert Finding.from_record(r).to_record() == r
    assert build_checker(r["checker"]).check("Arr, matey!")


def test_bad_settings_and_inputs_are_named():
    with pytest.raises(ValueError, match="fdr=1.5"):
        ValidateSettings(fdr=1.5)
    with pytest.raises(ValueError, match="direction='up'"):
        Hypothesis("x", {"type": "string", "value": "x"}, direction="up")
    with pytest.raises(ValueError, match="either samples"):
        validate(None, [PIRATE])
    with pytest.raises(ValueError, match="no plain samples"):
        validate(None, [PIRATE], samples=[sample(0, "plain_s", "x").model_copy(update={"mode": "amp_c"})])
