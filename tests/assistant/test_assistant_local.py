"""LocalAssistant: chat template, seeded sampling, options; the embedded model shares the pair's weights."""

from __future__ import annotations

import pytest
import torch

from cdx.assistant import LocalAssistant
from cdx.models import ModelSpec, load_model
from cdx.tasks.search import build_assistant
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
    assert a.cache_id == "local:tiny-random(seed=0):None:float32:top_p=0.8"


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
