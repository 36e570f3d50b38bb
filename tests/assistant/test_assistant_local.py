"""LocalAssistant: chat template, seeded sampling, options; the embedded model shares the pair's weights."""

from __future__ import annotations

import pytest
import torch

from cdx.assistant import LocalAssistant
from cdx.models import ModelSpec, load_model
from cdx.tasks.common import build_assistant
from tests.conftest import compose

MSG = [{"role": "system", "content": "You write prompts."}, {"role": "user", "content": "Write one."}]


def test_reply_is_the_chat_templated_generation_and_seeded():
    a = LocalAssistant(model_path="tiny-random", top_p=0.9)
    model, tok = load_model(ModelSpec(path="tiny-random"))
    ids = tok.apply_chat_template(MSG, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    greedy = model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert a.complete(MSG, temperature=0.0, max_tokens=6) == tok.decode(greedy[0, ids["input_ids"].shape[1]:],
                                                                         skip_special_tokens=True)
    first = a.complete(MSG, temperature=1.0, max_tokens=8, seed=5)
    torch.manual_seed(123)
    assert a.complete(MSG, temperature=1.0, max_tokens=8, seed=5) == first  # the seed, not the global state
    others = {a.complete(MSG, temperature=1.0, max_tokens=8, seed=s) for s in range(6, 12)}
    assert len(others - {first}) >= 1


def test_options_from_config_reach_the_spec():
    a = build_assistant(compose(["assistant.model_path=tiny-random", "assistant.dtype=float32", "assistant.device=cpu",
                                 "assistant.top_p=0.8", "assistant.cache.enabled=false",
                                 "assistant.cache_dir=/tmp/none", "assistant.gguf_file=null"]).assistant)
    assert isinstance(a, LocalAssistant)
    assert (a.spec.path, a.spec.dtype, a.spec.device, a.top_p, a.cache_dir) == ("tiny-random", "float32", "cpu", 0.8,
                                                                               "/tmp/none")
    # The cache key changes with every option that changes replies, and only with those.
    same = LocalAssistant(model_path="tiny-random", dtype="float32", top_p=0.8, cache_dir="/elsewhere")
    assert a.cache_id == same.cache_id
    for other in (LocalAssistant(model_path="tiny-random", dtype="float32", top_p=0.9),
                  LocalAssistant(model_path="tiny-random", dtype="bfloat16", top_p=0.8),
                  LocalAssistant(model_path="embedded:smollm2-135m-instruct", dtype="float32", top_p=0.8)):
        assert other.cache_id != a.cache_id


def test_seeded_request_leaves_the_global_random_state_alone():
    a = LocalAssistant(model_path="tiny-random")
    torch.manual_seed(7)
    before = torch.get_rng_state()
    first = a.complete(MSG, temperature=1.0, max_tokens=8, seed=5)
    assert torch.equal(torch.get_rng_state(), before)  # another run's stream in this process is untouched
    torch.manual_seed(99)
    assert a.complete(MSG, temperature=1.0, max_tokens=8, seed=5) == first


def test_gumbel_max_samples_the_softmax():
    from scipy.stats import chisquare

    from cdx.assistant._local import GumbelNoise

    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0, float("-inf")]])
    noise = GumbelNoise(torch.Generator().manual_seed(0))
    n = 20000
    draws = noise(None, scores.expand(n, 5)).argmax(-1)  # (n,): one draw per row
    counts = torch.bincount(draws, minlength=5).double()
    expected = torch.softmax(scores.double(), -1).flatten() * n
    assert counts[4] == 0  # a -inf score is never drawn
    assert chisquare(counts[:4].numpy(), expected[:4].numpy()).pvalue > 1e-3


@pytest.mark.slow
def test_embedded_assistant_shares_weights_with_the_pair_and_gguf_file_loads_the_same_model():
    from cdx.models import load_pair
    from cdx.models.embedded import embedded_gguf

    pair = load_pair({"path": "embedded:smollm2-135m-instruct"}, {"path": "embedded:smollm2-135m-instruct"})
    a = LocalAssistant()
    reply = a.complete(MSG, temperature=0.0, max_tokens=12)
    assert reply.strip()
    assert load_model(a.spec)[0] is pair.starting.model  # one copy of the weights in the process
    folder, file = embedded_gguf("smollm2-135m-instruct")
    assert LocalAssistant(model_path=str(folder), gguf_file=file).complete(MSG, temperature=0.0, max_tokens=12) == reply
