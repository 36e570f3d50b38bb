"""Convert a GGUF file to transformers weights once, then reload the cached copy in about a second.

transformers de-quantizes GGUF tensors to floating point on every load (~20 s for SmolLM2-135M).
The converted model and tokenizer are written to `<cache_dir>/gguf/<key>/`, where the key hashes
the file's real path, size and modification time plus the transformers version (a new converter
may convert differently). A file lock makes two processes that convert at once do it only once;
the copy is written to a temporary folder and renamed into place, so a killed conversion never
leaves a half-written cache entry.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import transformers
from filelock import FileLock

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """`$CDX_CACHE_DIR`, else `$XDG_CACHE_HOME/cdx`, else `~/.cache/cdx`."""
    if os.environ.get("CDX_CACHE_DIR"):
        return Path(os.environ["CDX_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cdx"


def gguf_key(gguf_path: Path) -> str:
    st = gguf_path.stat()
    ident = f"{gguf_path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{transformers.__version__}"
    return f"{gguf_path.stem}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}"


def converted_dir(folder: Path, gguf_file: str, cache_dir: Path | None = None) -> Path:
    """Directory holding the converted model for `folder/gguf_file`, converting it if needed."""
    gguf_path = Path(folder) / gguf_file
    if not gguf_path.is_file():
        raise FileNotFoundError(f"GGUF file {gguf_path} does not exist")
    root = Path(cache_dir or default_cache_dir()) / "gguf"
    root.mkdir(parents=True, exist_ok=True)
    target = root / gguf_key(gguf_path)
    if (target / "config.json").is_file():
        return target
    with FileLock(str(target) + ".lock"):
        if (target / "config.json").is_file():  # another process converted it while we waited
            return target
        log.info("converting %s once (about 20 s); cached at %s", gguf_path, target)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
        try:
            _convert(gguf_path, tmp)
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(gguf_path: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kw = dict(gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), dtype=torch.float32, **kw)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), **kw)
    # The weights are de-quantized floats now; drop the GGUF marker, which save_pretrained refuses.
    model.hf_quantizer = None  # type: ignore[assignment]  # nn.Module's __setattr__ typing
    model.is_quantized = False  # type: ignore[assignment]
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
