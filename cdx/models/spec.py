"""What one side of a model pair is: where its weights come from and how it is prompted."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

DTYPES = ("auto", "float32", "float16", "bfloat16")
QUANTIZATIONS = (None, "4bit", "8bit")


@dataclass(frozen=True)
class ModelSpec:
    """One model: weights (path, GGUF file, adapter, dtype, device, quantization) plus context.

    `system_prompt` and `prefix` are *context*, not weights: two specs that differ only in them
    share one loaded model (see `weights_key`).
    """

    path: str
    """Hub id, local directory, `embedded:smollm2-135m-instruct` or `tiny-random`."""
    gguf_file: str | None = None
    """GGUF file name inside `path` (transformers' `gguf_file=`); converted once, then cached."""
    revision: str | None = None
    """Hub revision (branch, tag or commit)."""
    adapter: str | None = None
    """PEFT/LoRA adapter (hub id or directory) applied on top of `path`."""
    dtype: str = "float32"
    """One of auto, float32, float16, bfloat16."""
    device: str = "cpu"
    """cpu, cuda, cuda:N, mps; ignored when `device_map` is set."""
    device_map: Any = None
    """`auto` (accelerate spreads a large model over GPUs and CPU) or an explicit map."""
    quantization: str | None = None
    """bitsandbytes `4bit` (nf4) or `8bit` (LLM.int8); CUDA only."""
    seed: int = 0
    """Seed of the random weights for `tiny-random`."""
    trust_remote_code: bool = False
    system_prompt: str | None = None
    """System message put in front of every prompt through the chat template."""
    prefix: str | None = None
    """Text put before every prompt (after the chat template's user turn opens)."""
    name: str | None = None
    """Display name; defaults to the path (plus adapter)."""
    extra: dict = field(default_factory=dict)
    """Extra `from_pretrained` keyword arguments (e.g. attn_implementation)."""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype={self.dtype!r} is not valid for model {self.path!r}; use one of {DTYPES}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(
                f"quantization={self.quantization!r} is not valid for model {self.path!r}; "
                f"use one of {QUANTIZATIONS} (null for none)"
            )
        if not self.path:
            raise ValueError("model path is empty: give a hub id, a local directory or embedded:smollm2-135m-instruct")

    @property
    def weights_key(self) -> tuple:
        """Everything that decides the loaded weights; context fields are left out."""
        d = asdict(self)
        for k in ("system_prompt", "prefix", "name"):
            d.pop(k)
        d["extra"] = tuple(sorted((k, repr(v)) for k, v in d["extra"].items()))
        d["device_map"] = repr(d["device_map"])
        return tuple(sorted(d.items()))

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        base = self.path if self.adapter is None else f"{self.path}+{self.adapter}"
        return base if self.path != "tiny-random" else f"tiny-random(seed={self.seed})"

    @property
    def context_label(self) -> str:
        """Label including the context, e.g. for the report header."""
        bits = [self.label]
        if self.system_prompt:
            bits.append(f"system={self.system_prompt[:40]!r}")
        if self.prefix:
            bits.append(f"prefix={self.prefix[:40]!r}")
        return " ".join(bits)
