"""Load one model spec into (model, tokenizer), once per process.

A module-level cache keyed by `ModelSpec.weights_key` means a sequential Hydra multirun loads each
distinct model once, and two sides that differ only in system prompt or prefix share one model.
A spec with an adapter loads its base through the same cache and adds the adapter as a view over
the base's tensors (`cdx.models.adapters`), so base vs base+adapter, or one base against several
adapters, holds one copy of the base weights.

The cache is filled under a lock: one process may serve several runs at once (the app), and two
threads asking for the same model must get one copy, loaded once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from pathlib import Path

import torch

from cdx.models.spec import ModelSpec

log = logging.getLogger(__name__)

_LOADED: dict[tuple, tuple] = {}
# Re-entrant: an adapter spec loads its base through load_model while holding the lock.
_LOCK = threading.RLock()


def clear_cache() -> None:
    """Forget every loaded model (frees memory between unrelated runs in one process)."""
    with _LOCK:
        _LOADED.clear()


def load_model(spec: ModelSpec, cache_dir: str | None = None):
    """(model in eval mode, tokenizer with left padding and a pad token) for `spec`."""
    key = (spec.weights_key, str(cache_dir))
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = _load_with_adapter(spec, cache_dir) if spec.adapter else _load_uncached(spec, cache_dir)
        return _LOADED[key]


def _load_with_adapter(spec: ModelSpec, cache_dir: str | None):
    """The cached base plus the adapter as a view sharing the base's weight tensors."""
    from cdx.models.adapters import adapter_view

    assert spec.adapter is not None  # called only for a spec with an adapter
    base, tokenizer = load_model(replace(spec, adapter=None, name=None), cache_dir)
    log.info("adding adapter %s over the loaded base %s", spec.adapter, spec.path)
    return adapter_view(base, spec.adapter, spec.label), tokenizer


def torch_dtype(name: str):
    return "auto" if name == "auto" else getattr(torch, name)


def _load_uncached(spec: ModelSpec, cache_dir: str | None):
    log.info("loading %s", spec.label)
    if spec.path == "tiny-random":
        from cdx.models.tiny import tiny_model, tiny_tokenizer

        model, tokenizer = tiny_model(spec.seed, torch_dtype(spec.dtype) if spec.dtype != "auto" else torch.float32), tiny_tokenizer()
        model = model.to(_device(spec))
    else:
        path, kwargs = _resolve(spec, cache_dir)
        model = _from_pretrained(spec, path, kwargs)
        tokenizer = _tokenizer(spec, path, kwargs)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    model.requires_grad_(False)
    return model, tokenizer


def _resolve(spec: ModelSpec, cache_dir: str | None) -> tuple[str, dict]:
    """Where `from_pretrained` reads from: a GGUF file becomes its cached converted directory."""
    from cdx.models.gguf_cache import converted_dir

    if spec.path.startswith("embedded:"):
        from cdx.models.embedded import embedded_gguf

        folder, filename = embedded_gguf(spec.path.split(":", 1)[1])
        return str(converted_dir(folder, filename, Path(cache_dir) if cache_dir else None)), {}
    if spec.gguf_file:
        folder = Path(spec.path)
        if not folder.is_dir():
            # A hub repo holding a GGUF file: fetch just that file, then convert it once.
            from huggingface_hub import hf_hub_download

            folder = Path(hf_hub_download(spec.path, spec.gguf_file, revision=spec.revision)).parent
        return str(converted_dir(folder, spec.gguf_file, Path(cache_dir) if cache_dir else None)), {}
    looks_local = spec.path.startswith((".", "/", "~")) or Path(spec.path).expanduser().exists()
    if looks_local and not Path(spec.path).expanduser().is_dir():
        raise FileNotFoundError(
            f"model path {spec.path!r} does not exist; give a local directory with config.json, a hub id "
            "such as meta-llama/Meta-Llama-3-8B, or embedded:smollm2-135m-instruct"
        )
    kwargs = {"revision": spec.revision} if spec.revision else {}
    return str(Path(spec.path).expanduser()) if looks_local else spec.path, kwargs


def _device(spec: ModelSpec) -> str:
    if spec.device == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if spec.device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={spec.device!r} for {spec.label} but CUDA is not available; use device=cpu")
    return spec.device


def _quantization_config(spec: ModelSpec):
    if spec.quantization is None:
        return None
    if not torch.cuda.is_available():
        raise RuntimeError(
            f"quantization={spec.quantization!r} for {spec.label} needs bitsandbytes on a CUDA GPU, and no GPU "
            "is visible here; set quantization=null (full precision) or run on a CUDA machine"
        )
    from transformers import BitsAndBytesConfig

    if spec.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def _from_pretrained(spec: ModelSpec, path: str, kwargs: dict):
    from transformers import AutoModelForCausalLM

    quant = _quantization_config(spec)
    kwargs = dict(kwargs, dtype=torch_dtype(spec.dtype), trust_remote_code=spec.trust_remote_code, **spec.extra)
    if quant is not None:
        kwargs["quantization_config"] = quant
    if spec.device_map is not None or quant is not None:
        kwargs["device_map"] = spec.device_map if spec.device_map is not None else {"": _device(spec)}
        return AutoModelForCausalLM.from_pretrained(path, **kwargs)
    return AutoModelForCausalLM.from_pretrained(path, **kwargs).to(_device(spec))  # type: ignore[arg-type]  # transformers' .to stub


def _tokenizer(spec: ModelSpec, path: str, kwargs: dict):
    from transformers import AutoTokenizer

    kw = {k: v for k, v in kwargs.items() if k == "revision"}
    return AutoTokenizer.from_pretrained(path, trust_remote_code=spec.trust_remote_code, **kw)
