"""Adapter pairs over one set of base weights: same logits as the merged adapter, about one model of memory."""

import copy
import threading

import pytest
import torch

from cdx.models import ModelSpec, interpolate, load_model, load_pair
from cdx.models.adapters import adapter_view, unique_param_bytes
from cdx.models.loading import clear_cache

IDS = torch.tensor([[5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16]])


def _random_lora(base, path, seed: int, targets=("q_proj", "v_proj", "down_proj")):
    """A random (non-zero) LoRA on a copy of `base`, saved to `path`; returns the trained-looking PeftModel."""
    from peft import LoraConfig, get_peft_model

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=list(targets),
                                                                    init_lora_weights=False))
    peft_model.save_pretrained(path)
    return peft_model.eval()


@pytest.fixture
def base_dir(tmp_path):
    from cdx.models.tiny import tiny_model, tiny_tokenizer

    d = tmp_path / "base"
    tiny_model(0).save_pretrained(d)
    tiny_tokenizer().save_pretrained(d)
    yield d
    clear_cache()


@torch.no_grad()
def _logits(model):
    return model(input_ids=IDS).logits


def test_adapter_side_equals_merged_adapter_and_shares_the_base(base_dir, tmp_path):
    base_ref = load_model(ModelSpec(path=str(base_dir)))[0]
    reference = _random_lora(base_ref, tmp_path / "a", seed=1)
    merged = copy.deepcopy(reference).merge_and_unload()  # the merged-adapter path, separate weights
    before = _logits(base_ref).clone()
    pair = load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(tmp_path / "a")})
    assert pair.starting.model is base_ref  # the base is loaded once and reused
    torch.testing.assert_close(_logits(pair.comparison.model), _logits(merged), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_logits(pair.starting.model), before)  # base side untouched
    assert not torch.allclose(_logits(pair.starting.model), _logits(pair.comparison.model), atol=1e-3)
    one = unique_param_bytes(base_ref)
    assert unique_param_bytes(pair.starting.model, pair.comparison.model) <= 1.15 * one
    assert unique_param_bytes(base_ref, merged) >= 1.9 * one  # two separate models: about twice
    assert pair.shares_base and not pair.shares_weights


def test_several_adapters_against_one_base(base_dir, tmp_path):
    base = load_model(ModelSpec(path=str(base_dir)))[0]
    refs = [copy.deepcopy(_random_lora(base, tmp_path / f"a{i}", seed=10 + i)).merge_and_unload() for i in range(3)]
    views = [load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(tmp_path / f"a{i}")})
             .comparison.model for i in range(3)]
    for view, ref in zip(views, refs):
        torch.testing.assert_close(_logits(view), _logits(ref), atol=1e-5, rtol=1e-4)
    assert not torch.allclose(_logits(views[0]), _logits(views[1]), atol=1e-3)  # each view has its own adapter
    assert unique_param_bytes(base, *views) <= 1.15 * unique_param_bytes(base)
    # the module cache hands the same view back for the same spec
    again = load_model(ModelSpec(path=str(base_dir), adapter=str(tmp_path / "a0")))[0]
    assert again is views[0]


def test_two_adapters_as_the_two_sides(base_dir, tmp_path):
    base = load_model(ModelSpec(path=str(base_dir)))[0]
    ref_a = copy.deepcopy(_random_lora(base, tmp_path / "a", seed=3)).merge_and_unload()
    ref_b = copy.deepcopy(_random_lora(base, tmp_path / "b", seed=4)).merge_and_unload()
    pair = load_pair({"path": str(base_dir), "adapter": str(tmp_path / "a")},
                     {"path": str(base_dir), "adapter": str(tmp_path / "b")})
    torch.testing.assert_close(_logits(pair.starting.model), _logits(ref_a), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_logits(pair.comparison.model), _logits(ref_b), atol=1e-5, rtol=1e-4)
    assert unique_param_bytes(pair.starting.model, pair.comparison.model) <= 1.15 * unique_param_bytes(base)


def test_interpolating_towards_an_adapter_uses_the_merged_weights(base_dir, tmp_path):
    base = load_model(ModelSpec(path=str(base_dir)))[0]
    merged = copy.deepcopy(_random_lora(base, tmp_path / "a", seed=5)).merge_and_unload()
    pair = load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(tmp_path / "a")},
                     interpolation=0.5)
    expect = interpolate(base, merged, 0.5)
    torch.testing.assert_close(_logits(pair.comparison.model), _logits(expect), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_logits(pair.starting.model), _logits(base))


def test_decoding_an_adapter_pair_equals_base_against_merged_copy(base_dir, tmp_path):
    from cdx.decoding import ContrastiveDecoder, ProbDiff
    from cdx.models.pair import ModelPair, Side

    base = load_model(ModelSpec(path=str(base_dir)))[0]
    merged = copy.deepcopy(_random_lora(base, tmp_path / "a", seed=6)).merge_and_unload()
    view_pair = load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(tmp_path / "a")})
    separate = ModelPair(view_pair.starting, Side(view_pair.comparison.spec, merged, view_pair.tokenizer))
    prompts = ["Hello there", "What is the capital of France?", "Ahoy"]
    kw = dict(strategy="greedy", max_new_tokens=8, batch_size=3, stop_at_eos=False)
    for parallel in (True, False):
        a = [g for b in ContrastiveDecoder(view_pair, ProbDiff(), parallel=parallel, **kw).generate(prompts) for g in b]
        b = [g for b in ContrastiveDecoder(separate, ProbDiff(), parallel=parallel, **kw).generate(prompts) for g in b]
        assert [g.token_ids for g in a] == [g.token_ids for g in b]
        for x, y in zip(a, b):
            assert x.tokens["kl_sc"] == pytest.approx(y.tokens["kl_sc"], rel=1e-3, abs=1e-5)
        assert max(v for g in a for v in g.tokens["kl_sc"]) > 1e-4  # the adapter really changes the model


def test_bad_adapter_path_is_a_clear_error(base_dir):
    with pytest.raises(FileNotFoundError, match="adapter 'no-such-adapter'.*neither a directory"):
        adapter_view(load_model(ModelSpec(path=str(base_dir)))[0], "no-such-adapter")


def test_concurrent_loads_of_one_model_load_it_once(monkeypatch):
    import cdx.models.loading as loading

    calls = []
    real = loading._load_uncached

    def counting(spec, cache_dir):
        calls.append(spec)
        threading.Event().wait(0.05)  # widen the window two unlocked fills would race in
        return real(spec, cache_dir)

    monkeypatch.setattr(loading, "_load_uncached", counting)
    spec = ModelSpec(path="tiny-random", seed=77)
    got = []
    threads = [threading.Thread(target=lambda: got.append(load_model(spec)[0])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(m is got[0] for m in got)
    clear_cache()


def test_one_batch_with_per_row_adapters_equals_two_passes(base_dir, tmp_path):
    """PEFT's mixed-adapter batch (base rows and adapter rows in one forward) against two passes."""
    from cdx.decoding import ContrastiveDecoder, ProbDiff
    from cdx.decoding.streams import PairStreams

    base = load_model(ModelSpec(path=str(base_dir)))[0]
    _random_lora(base, tmp_path / "a", seed=8)
    pair = load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(tmp_path / "a")})
    flipped = load_pair({"path": str(base_dir), "adapter": str(tmp_path / "a")}, {"path": str(base_dir)})
    assert PairStreams(pair).mode == PairStreams(pair, adapter_batch=True).mode == "one-batch-adapter"
    assert PairStreams(pair, adapter_batch=False).mode.startswith(("threads", "sequential"))
    prompts = ["Hello there", "What is the capital of France?", "Ahoy"]
    for p in (pair, flipped):
        for strategy, extra in (("sample", {"generations_per_prefix": 2}), ("beam", {"num_beams": 2})):
            kw = dict(strategy=strategy, max_new_tokens=6, batch_size=3, stop_at_eos=False, seed=2, **extra)
            one = [g for b in ContrastiveDecoder(p, ProbDiff(), adapter_batch=True, **kw).generate(prompts) for g in b]
            two = [g for b in ContrastiveDecoder(p, ProbDiff(), adapter_batch=False, **kw).generate(prompts) for g in b]
            assert [g.token_ids for g in one] == [g.token_ids for g in two]
            for x, y in zip(one, two):
                assert x.tokens["kl_sc"] == pytest.approx(y.tokens["kl_sc"], rel=1e-3, abs=1e-5)
                assert x.tokens["logp_c"] == pytest.approx(y.tokens["logp_c"], rel=1e-3, abs=1e-5)
            assert max(v for g in one for v in g.tokens["kl_sc"]) > 1e-4  # base rows and adapter rows differ


def test_row_split_lora_equals_peft_per_row_adapters_and_is_per_thread(base_dir, tmp_path):
    """cdx's row-range LoRA (RowSplit) against PEFT's adapter_names batch and the merged model, row by row."""
    from cdx.models.adapters import row_split

    base = load_model(ModelSpec(path=str(base_dir)))[0]
    merged = copy.deepcopy(_random_lora(base, tmp_path / "a", seed=9)).merge_and_unload()
    view = load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(tmp_path / "a")}).comparison.model
    split = row_split(view)
    assert split is not None and row_split(view) is split and len(split.layers) == 2 * 3  # 2 layers x 3 targets
    ids = torch.cat([IDS, IDS])  # rows 0-1 base, rows 2-3 adapter
    name = next(iter(view.peft_config))
    with torch.no_grad():
        peft_rows = view(input_ids=ids, adapter_names=["__base__"] * 2 + [name] * 2).logits
        with split.rows(2, 4):
            mine = view(input_ids=ids).logits
            seen_elsewhere = []  # another thread using the view meanwhile gets the adapter on every row
            t = threading.Thread(target=lambda: seen_elsewhere.append(view(input_ids=IDS).logits))
            t.start()
            t.join()
        after = view(input_ids=IDS).logits  # outside the block: the whole adapter again
    torch.testing.assert_close(mine, peft_rows, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mine[:2], _logits(base), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mine[2:], _logits(merged), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(seen_elsewhere[0], _logits(merged), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(after, _logits(merged), atol=1e-5, rtol=1e-4)


def test_row_split_declines_lora_variants_and_the_pair_falls_back_to_peft_rows(base_dir, tmp_path):
    """A DoRA adapter is not a plain LoRA: no RowSplit, and PEFT refuses per-row DoRA, so the pair runs as
    two passes (what it asks for with adapter_batch=True too), equal to the merged adapter."""
    from peft import LoraConfig, get_peft_model

    from cdx.decoding import ContrastiveDecoder, ProbDiff
    from cdx.decoding.streams import PairStreams
    from cdx.models.adapters import row_split
    from cdx.models.pair import ModelPair, Side

    base = load_model(ModelSpec(path=str(base_dir)))[0]
    with torch.random.fork_rng():
        torch.manual_seed(3)
        dora = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                              init_lora_weights=False, use_dora=True))
    dora.save_pretrained(tmp_path / "d")
    pair = load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(tmp_path / "d")})
    assert row_split(pair.comparison.model) is None
    assert not PairStreams(pair, adapter_batch=True).mode.startswith("one-batch")
    merged = ModelPair(pair.starting, Side(pair.comparison.spec, copy.deepcopy(dora).merge_and_unload(), pair.tokenizer))
    kw = dict(strategy="greedy", max_new_tokens=5, batch_size=2, stop_at_eos=False)
    one = [g for b in ContrastiveDecoder(pair, ProbDiff(), adapter_batch=True, **kw).generate(["Hi", "Ahoy"]) for g in b]
    two = [g for b in ContrastiveDecoder(merged, ProbDiff(), **kw).generate(["Hi", "Ahoy"]) for g in b]
    assert [g.token_ids for g in one] == [g.token_ids for g in two]
    for x, y in zip(one, two):
        assert x.tokens["kl_sc"] == pytest.approx(y.tokens["kl_sc"], rel=1e-3, abs=1e-5)


def test_row_split_with_a_float32_lora_over_a_bfloat16_base_takes_the_casting_path(base_dir, tmp_path):
    """Base weights in bf16, LoRA in float32 (PEFT's default): the general path casts like PEFT does."""
    from cdx.models.adapters import adapter_view, row_split

    base = load_model(ModelSpec(path=str(base_dir)))[0]
    _random_lora(base, tmp_path / "a", seed=11)
    bf16 = copy.deepcopy(base).to(torch.bfloat16)
    view = adapter_view(bf16, str(tmp_path / "a"))
    split = row_split(view)
    assert split is not None and split.layers[0].lora_A[next(iter(view.peft_config))].weight.dtype == torch.float32
    ids = torch.cat([IDS, IDS])
    name = next(iter(view.peft_config))
    with torch.no_grad():
        peft_rows = view(input_ids=ids, adapter_names=["__base__"] * 2 + [name] * 2).logits
        with split.rows(2, 4):
            mine = view(input_ids=ids).logits
    torch.testing.assert_close(mine.float(), peft_rows.float(), atol=2e-2, rtol=2e-2)
    assert not torch.allclose(mine[:2].float(), mine[2:].float(), atol=1e-3)  # the adapter rows differ


def test_a_copy_of_a_row_split_view_runs_its_own_weights(base_dir, tmp_path):
    """The row-range forward is a method of the layer's class, so copy.deepcopy(view) keeps working on the
    copy's own weights (an instance-bound forward would still call the original layers)."""
    from cdx.models.adapters import row_split

    base = load_model(ModelSpec(path=str(base_dir)))[0]
    _random_lora(base, tmp_path / "a", seed=12)
    view = load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(tmp_path / "a")}).comparison.model
    split = row_split(view)
    clone = copy.deepcopy(view)
    with torch.no_grad():
        for p in clone.parameters():
            p.mul_(0.5)  # the copy now differs from the view in every weight
        ids = torch.cat([IDS, IDS])
        with split.rows(2, 4):
            mine, theirs = view(input_ids=ids).logits, clone(input_ids=ids).logits
        name = next(iter(clone.peft_config))
        expect = clone(input_ids=ids, adapter_names=["__base__"] * 2 + [name] * 2).logits
    assert row_split(clone) is not None and row_split(clone) is not split
    torch.testing.assert_close(theirs, expect, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(mine, theirs, atol=1e-3)
