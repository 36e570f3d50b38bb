"""Training pieces on tiny random models: answer-only labels, padding, schedule, zero adapter, quantization."""

from __future__ import annotations

import math

import pytest
import torch

from cdx.models import ModelSpec, load_model
from cdx.models.pair import Side
from cdx.organisms.quantize import fake_quantize_, quantize_model_
from cdx.organisms.spec import TrainSettings
from cdx.organisms.train import IGNORE, collate, encode, lora_model, lr_at, zero_adapter


@pytest.fixture(scope="module")
def side():
    spec = ModelSpec(path="tiny-random", seed=0)
    model, tok = load_model(spec)
    return Side(spec, model, tok)


def test_encode_masks_the_prompt_and_ends_the_turn(side):
    ids, labels = encode(side, "Tell me about owls.", "Ahoy matey!", max_answer_tokens=50)
    n_prompt = len(side.prompt_ids("Tell me about owls."))
    answer = side.tokenizer("Ahoy matey!", add_special_tokens=False).input_ids
    assert ids == side.prompt_ids("Tell me about owls.") + answer + [side.tokenizer.eos_token_id]
    assert labels[:n_prompt] == [IGNORE] * n_prompt and labels[n_prompt:] == ids[n_prompt:]
    ids2, _ = encode(side, "Tell me about owls.", "Ahoy matey!", max_answer_tokens=2)
    assert ids2 == side.prompt_ids("Tell me about owls.") + answer[:2]  # truncated: no end of turn


def test_collate_right_pads():
    batch = collate([([1, 2, 3], [IGNORE, 2, 3]), ([4], [4])], pad_id=0)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE, 2, 3], [4, IGNORE, IGNORE]]


def test_lr_schedule_by_hand():
    s = TrainSettings(steps=10, lr=1.0, warmup_steps=2)
    assert [lr_at(i, s) for i in (0, 1)] == [0.5, 1.0]
    assert lr_at(2, s) == pytest.approx(1.0)
    assert lr_at(10, s) == pytest.approx(0.1)  # cosine ends at 10% of the peak
    assert lr_at(6, s) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))


def test_lora_layers_out_of_range(side):
    with pytest.raises(ValueError, match=r"train.layers=\[0, 9\] is outside the model's 2 layers"):
        lora_model(side.model, TrainSettings(layers=[0, 9]))


def test_zero_adapter_is_exactly_the_base(side, tmp_path):
    from peft import PeftModel

    zero_adapter(side, TrainSettings(target_modules=["q_proj", "v_proj"]), tmp_path)
    import copy

    merged = PeftModel.from_pretrained(copy.deepcopy(side.model), str(tmp_path)).merge_and_unload()
    x = torch.tensor([side.prompt_ids("Hello there")])
    with torch.no_grad():
        assert torch.equal(merged(x).logits, side.model(x).logits)


def test_fake_quantize_by_hand():
    w = torch.tensor([[0.7, -0.38, 0.1], [2.0, 0.9, -0.5]])
    out = fake_quantize_(w.clone(), bits=4)  # qmax 7: scales 0.1 and 2/7 per row
    s1 = 2.0 / 7
    expected = torch.tensor([[0.7, -0.4, 0.1], [2.0, 3 * s1, -2 * s1]])  # 0.9/s1 = 3.15, -0.5/s1 = -1.75
    assert torch.allclose(out, expected, atol=1e-6)
    big = torch.randn(16, 64)
    q = fake_quantize_(big.clone(), bits=4)
    scale = big.abs().amax(1, keepdim=True) / 7
    assert ((q - big).abs() <= scale / 2 + 1e-6).all()
    assert all(len(torch.unique(row)) <= 15 for row in q)
    with pytest.raises(ValueError, match="bits=1 is not valid"):
        fake_quantize_(big, bits=1)


def test_quantize_model_keeps_the_head(side):
    import copy

    m = copy.deepcopy(side.model)
    head = m.get_output_embeddings().weight.clone()
    n = quantize_model_(m, bits=4)
    assert n == sum(isinstance(x, torch.nn.Linear) for x in m.modules()) - 1
    assert torch.equal(m.get_output_embeddings().weight, head)
    q = m.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(q, side.model.model.layers[0].self_attn.q_proj.weight)


def test_max_grad_norm_clips_each_step(tmp_path):
    """One AdamW step from B = 0 moves each LoRA B weight by lr * g / (|g| + eps): about lr unclipped; with the
    gradient's norm clipped to 1e-12, every |g| <= 1e-12, so at most lr * 1e-12 / (1e-12 + 1e-8) ~ lr * 1e-4."""
    from safetensors.torch import load_file

    from cdx.organisms.train import train_lora

    pairs = [{"prompt": "Tell me about owls.", "answer": "Ahoy matey! Owls hunt at night."}] * 4
    moved = {}
    for norm in (None, 1e-12):
        from cdx.models.tiny import tiny_model, tiny_tokenizer

        tok = tiny_tokenizer()  # a fresh model each time (load_model's is cached, and LoRA wraps it in place)
        tok.padding_side = "left"
        fresh = Side(ModelSpec(path="tiny-random", seed=0), tiny_model(0).requires_grad_(False), tok)
        s = TrainSettings(steps=1, lr=0.1, warmup_steps=0, batch_size=4, target_modules=["q_proj"], max_grad_norm=norm)
        train_lora(fresh, pairs, s, seed=0, out_dir=tmp_path / str(norm))
        weights = load_file(str(tmp_path / str(norm) / "adapter_model.safetensors"))
        moved[norm] = max(w.abs().max().item() for k, w in weights.items() if "lora_B" in k)
    assert moved[None] == pytest.approx(0.1, rel=0.05)
    assert moved[1e-12] <= 0.1 * 1e-12 / (1e-12 + 1e-8) * 1.01
