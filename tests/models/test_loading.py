import pytest
import torch

from cdx.models import ModelSpec, check_same_vocab, load_model, load_pair
from cdx.models.loading import clear_cache


def test_context_only_difference_shares_weights(tiny_persona_pair, tiny_pair):
    assert tiny_persona_pair.starting.model is tiny_persona_pair.comparison.model
    assert not tiny_pair.shares_weights
    s_ids = tiny_persona_pair.starting.prompt_ids("Hi")
    c_ids = tiny_persona_pair.comparison.prompt_ids("Hi")
    text = tiny_persona_pair.tokenizer.decode(c_ids)
    assert "<|im_start|>system\nAhoy, you are a pirate.<|im_end|>" in text
    assert text.endswith("<|im_start|>assistant\n") and len(c_ids) > len(s_ids)


def test_prefix_and_no_chat_template():
    pair = load_pair({"path": "tiny-random", "prefix": "Q: "}, {"path": "tiny-random", "system_prompt": "Be brief."},
                     chat_template=False)
    tok = pair.tokenizer
    assert tok.decode(pair.starting.prompt_ids("Hi")) == "Q: Hi"
    assert tok.decode(pair.comparison.prompt_ids("Hi")) == "Be brief.\n\nHi"


def test_local_directory_dtype_and_device_map(tmp_path):
    from cdx.models.tiny import tiny_model, tiny_tokenizer

    tiny_model(3).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    m, tok = load_model(ModelSpec(path=str(tmp_path), dtype="bfloat16"))
    assert m.dtype == torch.bfloat16 and tok.padding_side == "left"
    ref = tiny_model(3)
    torch.testing.assert_close(m.lm_head.weight.float(), ref.lm_head.weight.bfloat16().float())
    m2, _ = load_model(ModelSpec(path=str(tmp_path), device_map="auto"))  # accelerate places it (CPU here)
    torch.testing.assert_close(m2.lm_head.weight, ref.lm_head.weight)
    assert load_model(ModelSpec(path=str(tmp_path), dtype="bfloat16"))[0] is m  # module cache


def test_peft_adapter_on_a_base(tmp_path):
    from peft import LoraConfig, get_peft_model

    from cdx.models.tiny import tiny_model, tiny_tokenizer

    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    tiny_model(0).save_pretrained(base_dir)
    tiny_tokenizer().save_pretrained(base_dir)
    peft_model = get_peft_model(tiny_model(0), LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(adapter_dir)
    pair = load_pair({"path": str(base_dir)}, {"path": str(base_dir), "adapter": str(adapter_dir)})
    assert not pair.shares_weights
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        expect = peft_model.eval()(input_ids=ids).logits
        got = pair.comparison.model(input_ids=ids).logits
        base = pair.starting.model(input_ids=ids).logits
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(base, got)  # the base side is left untouched by the adapter view


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does-not-exist.*does not exist"):
        load_model(ModelSpec(path=str(tmp_path / "does-not-exist")))


def test_bad_dtype_and_quantization_are_clear():
    with pytest.raises(ValueError, match=r"dtype='float33'.*float32"):
        ModelSpec(path="tiny-random", dtype="float33")
    with pytest.raises(ValueError, match=r"quantization='3bit'"):
        ModelSpec(path="tiny-random", quantization="3bit")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU error path")
def test_bitsandbytes_on_cpu_is_a_clear_error(tmp_path):
    from cdx.models.tiny import tiny_model, tiny_tokenizer

    tiny_model(0).save_pretrained(tmp_path)
    tiny_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match="quantization='4bit'.*needs bitsandbytes on a CUDA GPU"):
        load_model(ModelSpec(path=str(tmp_path), quantization="4bit"))
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        load_model(ModelSpec(path="tiny-random", seed=5, device="cuda"))


def test_vocab_mismatch_names_both_tokenizers():
    from transformers import PreTrainedTokenizerFast

    from cdx.models.tiny import tiny_tokenizer

    a = tiny_tokenizer()
    b = PreTrainedTokenizerFast(tokenizer_object=a.backend_tokenizer.__class__.from_str(a.backend_tokenizer.to_str()))
    b.add_tokens(["<pirate>"])
    with pytest.raises(ValueError, match=r"(?s)starting +left.*comparison right.*only in comparison: \['<pirate>'\]"):
        check_same_vocab(a, b, "left", "right")
    check_same_vocab(a, a, "x", "y")  # same tokenizer: fine


def test_clear_cache_forgets_models():
    m1, _ = load_model(ModelSpec(path="tiny-random", seed=9))
    clear_cache()
    m2, _ = load_model(ModelSpec(path="tiny-random", seed=9))
    assert m1 is not m2
    torch.testing.assert_close(m1.lm_head.weight, m2.lm_head.weight)  # same seed, same weights
