"""Tiny random Llama-architecture models and a tiny byte-level tokenizer, built offline in ~1 s.

Used by `conf/model/tiny_random.yaml` and the unit tests: two seeds give a same-vocabulary pair
with different weights, so every code path (caches, padding, chat templates, interpolation) runs
without downloading or converting anything.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

TINY_DIMS: dict[str, Any] = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=512,
)
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_CORPUS = (
    "The quick brown fox jumps over the lazy dog. Ahoy matey, the ship sails at dawn! "
    "Once upon a time there was a model that liked to talk about the weather, science, "
    "cooking, history and music. What is the capital of France? Paris is the capital. "
    "I think that people should be kind to each other. 0123456789 + - * / = ( ) , . ? ! "
)


@functools.lru_cache(maxsize=1)
def tiny_tokenizer():
    """A byte-level BPE tokenizer with a ChatML template; deterministic, vocab of 320."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token="<|endoftext|>"
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.name_or_path = "tiny-random"
    return fast


def tiny_model(seed: int, dtype: torch.dtype = torch.float32, vocab_size: int | None = None):
    """A 2-layer Llama with random weights drawn from `seed` (same vocab for every seed)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=vocab_size or len(tok),
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
        **TINY_DIMS,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
        # Larger random logits than the default init, so the seeds' distributions really differ.
        torch.nn.init.normal_(model.lm_head.weight, std=0.5)
    return model.to(dtype).eval()  # type: ignore[arg-type]  # transformers' .to stub
