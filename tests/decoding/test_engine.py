"""The cached, batched engine against independent, naive references."""

import math

import pytest
import torch

from cdx.decoding import ContrastiveDecoder, LogitDiff, ProbDiff, score_rows
from cdx.metrics import token_metrics

PROMPTS = ["Hello there", "What is the capital of France? Tell me now.", "Ahoy", "I think that people should"]


@torch.no_grad()
def naive_greedy(pair, rule, prompt, n):
    """Upstream-style reference: re-run both models over the whole sequence every step, no cache, no padding."""
    s = torch.tensor([pair.starting.prompt_ids(prompt)])
    c = torch.tensor([pair.comparison.prompt_ids(prompt)])
    out, kls = [], []
    for _ in range(n):
        lp_s = torch.log_softmax(pair.starting.model(input_ids=s).logits[0, -1].float(), -1)
        lp_c = torch.log_softmax(pair.comparison.model(input_ids=c).logits[0, -1].float(), -1)
        tok = int(rule(lp_s[None], lp_c[None]).argmax(-1))
        kls.append(float(token_metrics(lp_s, lp_c)["kl_sc"]))
        out.append(tok)
        s = torch.cat([s, torch.tensor([[tok]])], 1)
        c = torch.cat([c, torch.tensor([[tok]])], 1)
    return out, kls


def _all(dec, prompts):
    return [g for batch in dec.generate(prompts) for g in batch]


@pytest.mark.parametrize("rule", [ProbDiff(1, -1), LogitDiff(alpha=1.0), ProbDiff(1, -1, limit_to_starting_model_top_p=0.9)])
def test_cached_batched_greedy_equals_uncached_reference(tiny_pair, rule):
    dec = ContrastiveDecoder(tiny_pair, rule, strategy="greedy", max_new_tokens=10, batch_size=4, stop_at_eos=False)
    gens = _all(dec, PROMPTS)
    for g, prompt in zip(gens, PROMPTS):
        ref_tokens, ref_kl = naive_greedy(tiny_pair, rule, prompt, 10)
        assert g.token_ids == ref_tokens
        assert g.tokens["kl_sc"] == pytest.approx(ref_kl, rel=1e-4, abs=1e-5)


def test_persona_pair_runs_as_one_batch_and_matches_separate_models(tiny_persona_pair):
    import copy

    from cdx.models.pair import ModelPair, Side

    assert tiny_persona_pair.shares_weights
    s, c = tiny_persona_pair.starting, tiny_persona_pair.comparison
    separate = ModelPair(s, Side(c.spec, copy.deepcopy(c.model), c.tokenizer))
    assert not separate.shares_weights
    kw = dict(strategy="greedy", max_new_tokens=8, batch_size=3, stop_at_eos=False)
    a = _all(ContrastiveDecoder(tiny_persona_pair, ProbDiff(), **kw), PROMPTS)
    b = _all(ContrastiveDecoder(separate, ProbDiff(), **kw), PROMPTS)
    for x, y in zip(a, b):
        assert x.token_ids == y.token_ids
        assert x.tokens["kl_sc"] == pytest.approx(y.tokens["kl_sc"], rel=1e-4, abs=1e-5)
    assert max(v for g in a for v in g.tokens["kl_sc"]) > 0  # the two contexts really differ


@pytest.mark.parametrize("strategy", ["sample", "beam"])
def test_n_tokens_cost_one_prefill_and_n_minus_1_steps_per_model(tiny_pair, strategy):
    calls = {"s": 0, "c": 0}
    hooks = [side.model.register_forward_hook(lambda *_, k=k: calls.__setitem__(k, calls[k] + 1))
             for k, side in (("s", tiny_pair.starting), ("c", tiny_pair.comparison))]
    try:
        kw = dict(num_beams=2) if strategy == "beam" else {}
        dec = ContrastiveDecoder(tiny_pair, ProbDiff(), strategy=strategy, max_new_tokens=5, batch_size=4,
                                 stop_at_eos=False, **kw)
        gens = _all(dec, PROMPTS)
    finally:
        for h in hooks:
            h.remove()
    assert {len(g.token_ids) for g in gens} == {5}
    assert calls == {"s": 5, "c": 5}  # the prefill draws token 1; no forward after the last token


def test_batched_equals_one_by_one(tiny_pair):
    kw = dict(strategy="greedy", max_new_tokens=8, stop_at_eos=False)
    batched = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), batch_size=4, **kw), PROMPTS)
    single = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), batch_size=1, **kw), PROMPTS)
    for x, y in zip(batched, single):
        assert x.token_ids == y.token_ids
        assert x.tokens["js"] == pytest.approx(y.tokens["js"], rel=1e-4, abs=1e-6)


def test_one_zero_sampling_equals_hf_generate_with_same_seed(tiny_pair):
    model, tok = tiny_pair.starting.model, tiny_pair.tokenizer
    prompt = "Hello there"
    dec = ContrastiveDecoder(tiny_pair, ProbDiff(1, 0), strategy="sample", temperature=0.8, max_new_tokens=12,
                             batch_size=1, seed=0, stop_at_eos=False, sampler="multinomial")
    ours = _all(dec, [prompt])[0].token_ids
    ids = torch.tensor([tiny_pair.starting.prompt_ids(prompt)])
    torch.manual_seed(0)  # our batch 0 generator is seeded with seed * 1_000_003 + 0 = 0
    ref = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, temperature=0.8, top_k=0,
                         top_p=1.0, max_new_tokens=12, min_new_tokens=12, pad_token_id=tok.pad_token_id)
    assert ours == ref[0, ids.shape[1]:].tolist()


def _naive_inverse_cdf(d: torch.Tensor, u: float) -> int:
    """The first token whose running float64 sum of d exceeds u * sum(d), one token at a time."""
    w = d.double().tolist()
    target, run = u * math.fsum(w), 0.0
    for i, x in enumerate(w):
        run += x
        if run > target:
            return i
    raise AssertionError("u * total reached the end of the row")


@pytest.mark.parametrize("sampler", ["inverse_cdf", "multinomial"])
def test_sampling_matches_naive_step_by_step(tiny_pair, sampler):
    """prob_diff sampling: the engine's draw equals a naive loop drawing from the same generator
    (torch.multinomial's for `multinomial`; a Python running sum over one uniform for `inverse_cdf`)."""
    rule = ProbDiff(1, -1)
    prompt = "What is the weather?"
    dec = ContrastiveDecoder(tiny_pair, rule, strategy="sample", max_new_tokens=10, batch_size=1, seed=3,
                             stop_at_eos=False, sampler=sampler)
    ours = _all(dec, [prompt])[0].token_ids
    gen = torch.Generator().manual_seed(3 * 1_000_003)
    s = torch.tensor([tiny_pair.starting.prompt_ids(prompt)])
    c = torch.tensor([tiny_pair.comparison.prompt_ids(prompt)])
    ref = []
    with torch.no_grad():
        for _ in range(10):
            lp_s = torch.log_softmax(tiny_pair.starting.model(input_ids=s).logits[:, -1], -1)
            lp_c = torch.log_softmax(tiny_pair.comparison.model(input_ids=c).logits[:, -1], -1)
            d = (lp_s.exp() - lp_c.exp()).clamp_min(0)
            if sampler == "multinomial":
                tok = torch.multinomial(d / d.sum(), 1, generator=gen)
            else:
                u = float(torch.rand(1, 1, dtype=torch.float64, generator=gen))
                tok = torch.tensor([[_naive_inverse_cdf(d[0], u)]])
            ref.append(int(tok))
            s, c = torch.cat([s, tok], 1), torch.cat([c, tok], 1)
    assert ours == ref


@pytest.mark.parametrize("sampler", ["inverse_cdf", "multinomial"])
def test_sampled_token_frequencies_follow_the_combined_distribution(tiny_pair, sampler):
    """20,000 draws from fixed scores (with -inf tokens, a temperature and top-k): chi-square against
    softmax of the warped scores, computed independently in float64; excluded tokens never drawn."""
    from scipy.stats import chisquare

    n, vocab = 20_000, 12
    gen = torch.Generator().manual_seed(5)
    base = torch.tensor([2.0, 1.0, float("-inf"), 0.5, -1.0, -40.0, 0.0, float("-inf"), 1.5, -3.0, 0.2, -0.7])
    # top-k 8 of the 10 finite scores: -40 and -3 are cut
    dec = ContrastiveDecoder(tiny_pair, ProbDiff(), strategy="sample", temperature=0.7, top_k=8, sampler=sampler)
    tokens, _ = dec._draw(base.expand(n, vocab).clone(), dec._noise(n, vocab, gen))
    counts = torch.bincount(tokens, minlength=vocab).double()
    kept = base.double() / 0.7
    kept[kept < kept.topk(8).values[-1]] = float("-inf")
    expected = torch.softmax(kept, -1) * n
    assert counts[expected == 0].sum() == 0  # -inf and top-k-excluded tokens are never drawn
    kept = expected > 0
    assert kept.sum() == 8 and expected[kept].min() > 5  # chi-square's usual validity rule
    assert chisquare(counts[kept].numpy(), expected[kept].numpy()).pvalue > 1e-4


def test_inverse_cdf_edges_and_naive_reference():
    from cdx.decoding.engine import inverse_cdf

    w = torch.tensor([[0.0, 0.0, 3.0, 0.0, 1.0, 0.0, 0.0]])
    pick = lambda u: int(inverse_cdf(w, torch.tensor([[u]], dtype=torch.float64)))  # noqa: E731
    assert pick(0.0) == 2  # leading zero-weight tokens are skipped
    assert pick(0.7499) == 2 and pick(0.75) == 4  # [0, 3/4) -> token 2, [3/4, 1) -> token 4
    assert pick(math.nextafter(1.0, 0.0)) == 4  # trailing zero-weight tokens are never reached
    # u * total rounding up to total still lands on the last positive-weight token
    assert int(inverse_cdf(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0]], dtype=torch.float64))) == 0
    gen = torch.Generator().manual_seed(0)
    rows = torch.rand(64, 500, generator=gen) ** 8  # a skewed row, as a language model's
    rows[rows < 0.01] = 0.0
    u = torch.rand(64, 1, dtype=torch.float64, generator=gen)
    assert inverse_cdf(rows, u).tolist() == [_naive_inverse_cdf(r, float(x)) for r, x in zip(rows, u[:, 0])]


def test_seed_reproducible_and_generations_per_prefix(tiny_pair):
    kw = dict(strategy="sample", max_new_tokens=6, batch_size=2, generations_per_prefix=3, seed=11)
    a = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), **kw), PROMPTS[:3])
    b = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), **kw), PROMPTS[:3])
    assert [g.token_ids for g in a] == [g.token_ids for g in b]
    assert [(g.prompt_index, g.sample_index) for g in a] == [(i, j) for i in range(3) for j in range(3)]
    c = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), **{**kw, "seed": 12}), PROMPTS[:3])
    assert [g.token_ids for g in a] != [g.token_ids for g in c]
    d = [g for b in ContrastiveDecoder(tiny_pair, ProbDiff(), **kw).generate(PROMPTS[:3], seed=12) for g in b]
    assert [g.token_ids for g in d] == [g.token_ids for g in c]  # a per-call seed equals that decoder seed


def test_decode_time_metrics_equal_teacher_forced_scoring(tiny_pair):
    """Two independent code paths (incremental cache vs one chunked forward) agree token by token."""
    dec = ContrastiveDecoder(tiny_pair, ProbDiff(), strategy="sample", max_new_tokens=9, batch_size=4, seed=1,
                             stop_at_eos=False)
    gens = _all(dec, PROMPTS)
    rows_s = [tiny_pair.starting.prompt_ids(p) for p in PROMPTS]
    rows_c = [tiny_pair.comparison.prompt_ids(p) for p in PROMPTS]
    scored = score_rows(tiny_pair, rows_s, rows_c, [g.token_ids for g in gens], chunk=4)
    for g, s in zip(gens, scored):
        for k in ("kl_sc", "kl_cs", "js", "top1_agree", "logp_s", "logp_c"):
            assert g.tokens[k] == pytest.approx(s[k], rel=1e-4, abs=1e-5), k


def test_window_alignment_known_answer(bigram_pair):
    """The models differ only in what follows token 7: divergence must sit exactly after each 7."""
    tok = bigram_pair.tokenizer
    cont = [5, 7, 9, 7, 7, 3, 4]
    scored = score_rows(bigram_pair, [[2]], [[2]], [cont])[0]
    fed = [2] + cont[:-1]  # position t's distribution predicts cont[t] from the token before it
    for prev, v in zip(fed, scored["kl_sc"]):
        assert (v > 1e-3) == (prev == 7), (prev, v)
    # same through the decoder (greedy), including the prompt with include_prefix_in_divergences
    dec = ContrastiveDecoder(bigram_pair, ProbDiff(1, 0), strategy="greedy", max_new_tokens=6, stop_at_eos=False,
                             include_prefix_in_divergences=True)
    prompt = tok.decode([4, 7, 6, 7])
    g = _all(dec, [prompt])[0]
    ids = tok(prompt).input_ids
    fed = ids[-1:] + g.token_ids[:-1]
    assert [v > 1e-3 for v in g.tokens["kl_sc"]] == [t == 7 for t in fed]
    assert [v > 1e-3 for v in g.prefix_tokens["kl_sc"]] == [t == 7 for t in ids[:-1]]


def test_beam_search_returns_correctly_scored_sorted_beams(tiny_pair):
    rule = ProbDiff(1, -1, limit_to_starting_model_top_p=0.9)
    dec = ContrastiveDecoder(tiny_pair, rule, strategy="beam", num_beams=3, generations_per_prefix=3,
                             max_new_tokens=6, batch_size=2, stop_at_eos=False)
    gens = _all(dec, PROMPTS[:3])
    assert len(gens) == 9
    for i in range(3):
        beams = [g for g in gens if g.prompt_index == i]
        scores = [g.beam_score for g in beams]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(g.token_ids) for g in beams}) == 3  # distinct beams
        for g in beams:  # recompute sum of log q by teacher forcing
            s = torch.tensor([tiny_pair.starting.prompt_ids(PROMPTS[i]) + g.token_ids])
            c = torch.tensor([tiny_pair.comparison.prompt_ids(PROMPTS[i]) + g.token_ids])
            n = len(g.token_ids)
            with torch.no_grad():
                lp_s = torch.log_softmax(tiny_pair.starting.model(input_ids=s).logits[0, -n - 1:-1], -1)
                lp_c = torch.log_softmax(tiny_pair.comparison.model(input_ids=c).logits[0, -n - 1:-1], -1)
            logq = torch.log_softmax(rule(lp_s, lp_c), -1)
            total = logq.gather(-1, torch.tensor(g.token_ids)[:, None]).sum().item()
            assert g.beam_score == pytest.approx(total, rel=1e-4, abs=1e-4)
    greedy = _all(ContrastiveDecoder(tiny_pair, rule, strategy="greedy", max_new_tokens=6, stop_at_eos=False),
                  PROMPTS[:1])[0]
    best = gens[0]
    assert best.beam_score >= _score(tiny_pair, rule, PROMPTS[0], greedy.token_ids) - 1e-4  # beam >= greedy


def _score(pair, rule, prompt, ids):
    s = torch.tensor([pair.starting.prompt_ids(prompt) + ids])
    c = torch.tensor([pair.comparison.prompt_ids(prompt) + ids])
    n = len(ids)
    with torch.no_grad():
        lp_s = torch.log_softmax(pair.starting.model(input_ids=s).logits[0, -n - 1:-1], -1)
        lp_c = torch.log_softmax(pair.comparison.model(input_ids=c).logits[0, -n - 1:-1], -1)
    return torch.log_softmax(rule(lp_s, lp_c), -1).gather(-1, torch.tensor(ids)[:, None]).sum().item()


def test_eos_min_new_tokens_and_stop_strings(tiny_pair):
    eos = tiny_pair.tokenizer.eos_token_id

    class EosAfter3:  # rule that forces EOS at the 4th step, else token 50
        starting_weight, comparison_weight = 1.0, -1.0
        step = 0

        def __call__(self, lp_s, lp_c, probs=None):
            out = torch.full_like(lp_s, float("-inf"))
            out[:, eos if self.step >= 3 else 50] = 0.0
            self.step += 1
            return out

    g = _all(ContrastiveDecoder(tiny_pair, EosAfter3(), strategy="greedy", max_new_tokens=10), ["Hi"])[0]
    assert g.finish_reason == "eos" and g.token_ids == [50, 50, 50, eos]
    assert len(g.tokens["kl_sc"]) == 4
    g = _all(ContrastiveDecoder(tiny_pair, EosAfter3(), strategy="greedy", max_new_tokens=10, min_new_tokens=6),
             ["Hi"])[0]
    # EOS is blocked for the first 6 tokens: the rule's only token is banned at steps 3-5, so the
    # engine falls back to the starting model there; the first three tokens are still the rule's
    assert len(g.token_ids) >= 6 and g.token_ids[:3] == [50, 50, 50]
    assert eos not in g.token_ids[:6]
    word = tiny_pair.tokenizer.decode([50])
    g = _all(ContrastiveDecoder(tiny_pair, EosAfter3(), strategy="greedy", max_new_tokens=10,
                                stop_strings=[word * 2]), ["Hi"])[0]
    assert g.finish_reason == "stop" and g.token_ids == [50, 50]


def test_bad_decoder_options_are_clear(tiny_pair):
    with pytest.raises(ValueError, match="strategy='nucleus'"):
        ContrastiveDecoder(tiny_pair, ProbDiff(), strategy="nucleus")
    with pytest.raises(ValueError, match="generations_per_prefix=4 exceeds num_beams=2"):
        ContrastiveDecoder(tiny_pair, ProbDiff(), strategy="beam", num_beams=2, generations_per_prefix=4)
    with pytest.raises(ValueError, match="temperature=0"):
        ContrastiveDecoder(tiny_pair, ProbDiff(), temperature=0)
    with pytest.raises(ValueError, match=r"sampler='gumbel' is not valid: input should be 'inverse_cdf' or 'multinomial'"):
        ContrastiveDecoder(tiny_pair, ProbDiff(), sampler="gumbel")
    dec = ContrastiveDecoder(tiny_pair, ProbDiff(), include_prefix_in_divergences=True, max_new_tokens=2)
    persona_like = type(tiny_pair)(tiny_pair.starting, tiny_pair.comparison)
    persona_like.comparison = type(tiny_pair.comparison)(
        tiny_pair.comparison.spec.__class__(path="tiny-random", seed=1, system_prompt="x"),
        tiny_pair.comparison.model, tiny_pair.tokenizer)
    dec.pair = persona_like
    with pytest.raises(ValueError, match="include_prefix_in_divergences needs both sides"):
        _all(dec, ["Hi"])


def test_parallel_streams_give_the_same_results_as_sequential(tiny_pair):
    import torch as t

    threads = t.get_num_threads()
    kw = dict(strategy="sample", max_new_tokens=7, batch_size=2, seed=4)
    par = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), parallel=True, **kw), PROMPTS)
    seq = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), parallel=False, **kw), PROMPTS)
    beam_par = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), strategy="beam", num_beams=2, max_new_tokens=4,
                                       parallel=True), PROMPTS[:2])
    beam_seq = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), strategy="beam", num_beams=2, max_new_tokens=4,
                                       parallel=False), PROMPTS[:2])
    assert [g.token_ids for g in par] == [g.token_ids for g in seq]
    assert [g.token_ids for g in beam_par] == [g.token_ids for g in beam_seq]
    for a, b in zip(par, seq):
        assert a.tokens["kl_sc"] == pytest.approx(b.tokens["kl_sc"], rel=1e-5, abs=1e-6)
    assert t.get_num_threads() == threads  # the thread split is undone after decoding
    with pytest.raises(ValueError, match="parallel='yes'"):
        ContrastiveDecoder(tiny_pair, ProbDiff(), parallel="yes")


def test_concurrent_runs_in_one_process_neither_mix_nor_flip_thread_counts(tiny_pair, tiny_persona_pair):
    """The app serves several runs from one process: decoding in threads at once must give each run
    exactly its sequential result, and no thread's intra-op count may change under another."""
    import threading

    from cdx.decoding.streams import total_threads

    kw = dict(strategy="sample", max_new_tokens=12, batch_size=2, parallel=True)
    jobs = {"a": (tiny_pair, 1), "b": (tiny_pair, 2), "c": (tiny_persona_pair, 3)}
    expect = {k: [g.token_ids for g in _all(ContrastiveDecoder(p, ProbDiff(), seed=s, **kw), PROMPTS)]
              for k, (p, s) in jobs.items()}
    got, counts, errors = {}, [], []
    start = threading.Barrier(len(jobs) + 1)

    def run(key):
        try:
            start.wait()
            pair, seed = jobs[key]
            got[key] = [g.token_ids for g in _all(ContrastiveDecoder(pair, ProbDiff(), seed=seed, **kw), PROMPTS)]
            counts.append(torch.get_num_threads())
        except Exception as e:  # surfaced below: an assertion in a thread would be lost
            errors.append(e)

    threads = [threading.Thread(target=run, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    start.wait()
    late = []  # a thread born while the others decode starts from the process default
    t_late = threading.Thread(target=lambda: late.append(torch.get_num_threads()))
    t_late.start()
    for t in threads + [t_late]:
        t.join()
    assert not errors and got == expect
    assert counts == [total_threads()] * len(jobs) and late == [total_threads()]
    assert torch.get_num_threads() == total_threads()


def test_nan_scores_stop_sampling_with_a_clear_error(tiny_pair):
    """torch.multinomial refused NaN weights; the engine's own argmax(w / q) must refuse them too."""

    class NanRule:
        starting_weight, comparison_weight = 1.0, -1.0

        def __call__(self, lp_s, lp_c, probs=None):
            return torch.full_like(lp_s, float("nan"))

    with pytest.raises(FloatingPointError, match="combined scores hold NaN"):
        _all(ContrastiveDecoder(tiny_pair, NanRule(), max_new_tokens=3), ["Hi"])


@pytest.mark.parametrize("parallel", [True, False])
def test_plain_rule_with_min_new_tokens_keeps_the_metrics_exact(tiny_pair, parallel):
    """Weights (1, 0) hand back logp_s itself as the scores; blocking EOS must not write into it
    while the metrics (on the side workers) still read it. Checked against teacher-forced scoring."""
    dec = ContrastiveDecoder(tiny_pair, ProbDiff(1, 0), max_new_tokens=8, min_new_tokens=8, batch_size=4, seed=5,
                             parallel=parallel)
    gens = _all(dec, PROMPTS)
    rows_s = [tiny_pair.starting.prompt_ids(p) for p in PROMPTS]
    rows_c = [tiny_pair.comparison.prompt_ids(p) for p in PROMPTS]
    scored = score_rows(tiny_pair, rows_s, rows_c, [g.token_ids for g in gens])
    for g, s in zip(gens, scored):
        for k in ("kl_sc", "kl_cs", "js", "logp_s"):
            assert g.tokens[k] == pytest.approx(s[k], rel=1e-4, abs=1e-5), k


@pytest.mark.parametrize("rule", [ProbDiff(1, 0), LogitDiff(alpha=1.0)])
def test_repetition_penalty_equals_a_naive_loop_over_the_generated_tokens(tiny_pair, rule):
    """decoding.repetition_penalty: each step, every token this text already generated has its
    combined score x divided by the penalty if x > 0, multiplied if not (HF's rule, written out by
    hand here); the prompt is not counted. Greedy, so the tokens are the argmax of exactly that."""
    penalty, n, prompt = 4.0, 16, "Hello there"
    dec = ContrastiveDecoder(tiny_pair, rule, strategy="greedy", max_new_tokens=n, batch_size=1,
                             stop_at_eos=False, repetition_penalty=penalty)
    ours = _all(dec, [prompt])[0].token_ids
    s = torch.tensor([tiny_pair.starting.prompt_ids(prompt)])
    c = torch.tensor([tiny_pair.comparison.prompt_ids(prompt)])
    ref: list[int] = []
    changed = 0  # steps where the penalty changed the argmax: the test must exercise it
    with torch.no_grad():
        for _ in range(n):
            lp_s = torch.log_softmax(tiny_pair.starting.model(input_ids=s).logits[0, -1].float(), -1)
            lp_c = torch.log_softmax(tiny_pair.comparison.model(input_ids=c).logits[0, -1].float(), -1)
            x = rule(lp_s[None], lp_c[None])[0].tolist()
            unpenalised = max(range(len(x)), key=x.__getitem__)
            for t in set(ref):
                x[t] = x[t] / penalty if x[t] > 0 else x[t] * penalty
            tok = max(range(len(x)), key=x.__getitem__)
            changed += tok != unpenalised
            ref.append(tok)
            s, c = torch.cat([s, torch.tensor([[tok]])], 1), torch.cat([c, torch.tensor([[tok]])], 1)
    assert ours == ref
    assert changed >= 1
