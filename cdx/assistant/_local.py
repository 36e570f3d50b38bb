"""A Hugging Face chat model run in-process through its chat template."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

from cdx.assistant._base import Message, check_messages
from cdx.models.loading import load_model
from cdx.models.spec import ModelSpec


class LocalAssistant:
    """A local chat model (default: the embedded SmolLM2-135M-Instruct, so search needs no API key).

    The weights come from `cdx.models.load_model`'s process cache, so an assistant that is also a
    side of the model pair is loaded once.
    """

    def __init__(
        self,
        model_path: str = "embedded:smollm2-135m-instruct",
        gguf_file: str | None = None,
        dtype: str = "float32",
        device: str = "cpu",
        top_p: float = 0.95,
        cache_dir: str | None = None,
    ):
        self.spec = ModelSpec(path=model_path, gguf_file=gguf_file, dtype=dtype, device=device)
        self.top_p = top_p
        self.cache_dir = cache_dir

    def _sampler(self, temperature: float, seed: int | None) -> LogitsProcessorList:
        """Temperature and top-p, then Gumbel noise: the argmax is then a sample of the warped softmax.

        generate(do_sample=True) would draw from torch's global generator, which other runs in the
        same process share; the noise here comes from a generator of this request alone.
        """
        if temperature <= 0:
            return LogitsProcessorList()  # greedy
        gen = torch.Generator(device="cpu")
        if seed is None:
            gen.seed()  # a fresh non-deterministic seed
        else:
            gen.manual_seed(seed)
        return LogitsProcessorList([TemperatureLogitsWarper(temperature), TopPLogitsWarper(self.top_p),
                                    GumbelNoise(gen)])

    @property
    def cache_id(self) -> str:
        return f"local:{self.spec.label}:{self.spec.gguf_file}:{self.spec.dtype}:top_p={self.top_p}"

    def complete(
        self, messages: Sequence[Message], temperature: float = 0.0, max_tokens: int = 256, seed: int | None = None
    ) -> str:
        model, tok = load_model(self.spec, self.cache_dir)
        if not getattr(tok, "chat_template", None):
            raise ValueError(f"assistant model {self.spec.label!r} has no chat template; use a chat (instruct) model")
        enc = tok.apply_chat_template(
            check_messages(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        gen_cfg = GenerationConfig(
            max_new_tokens=max_tokens,
            do_sample=False,  # sampling is the Gumbel-max argmax below, from a private generator
            pad_token_id=tok.pad_token_id,
            eos_token_id=model.generation_config.eos_token_id or tok.eos_token_id,
        )
        with torch.no_grad():
            out = model.generate(**enc, generation_config=gen_cfg,
                                 logits_processor=self._sampler(temperature, seed))  # (1, prompt + new)
        return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)


class GumbelNoise(LogitsProcessor):
    """Adds Gumbel(0, 1) noise from `generator`: argmax(scores + G) ~ softmax(scores) (Gumbel-max trick)."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:  # scores: (B, V)
        u = torch.rand(scores.shape, generator=self.generator).clamp_(1e-12, 1 - 1e-7)
        return scores + (-torch.log(-torch.log(u))).to(device=scores.device, dtype=scores.dtype)
