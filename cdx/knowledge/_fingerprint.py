"""A stable identity for a model pair: the same weights under the same contexts get the same fingerprint.

What counts: each side's weights (hub id + revision, or the sha256 of the local weight / GGUF /
adapter files, so a retrained adapter in the same folder is a new pair), dtype, quantization,
the tiny-random seed, the system prompt and prefix; plus interpolation and chat templating.
What does not: display names, devices, cache folders. Hashes of big files are cached by path,
size and mtime (in the knowledge base when one is given), so a 300 MB GGUF is read once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, cast

# Files that decide a model's outputs; README, tokenizer-free metadata and truth.json do not.
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.gguf", "config.json", "adapter_config.json",
                   "tokenizer.json", "tokenizer_config.json", "generation_config.json")


class FileHasher:
    """sha256 of files, cached by (path, size, mtime) in `store` (a KnowledgeBase) or in memory."""

    def __init__(self, store: Any = None):
        self.store = store
        self._memo: dict[tuple[str, int, int], str] = {}
        self.n_hashed = 0  # files actually read (the cache test counts them)

    def file(self, path: Path) -> str:
        path = path.resolve()
        st = path.stat()
        key = (str(path), st.st_size, st.st_mtime_ns)
        if key in self._memo:
            return self._memo[key]
        digest = self.store.cached_hash(*key) if self.store is not None else None
        if digest is None:
            h = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            digest, self.n_hashed = h.hexdigest(), self.n_hashed + 1
            if self.store is not None:
                self.store.store_hash(*key, digest)
        self._memo[key] = digest
        return digest

    def folder(self, folder: Path, patterns=WEIGHT_PATTERNS, only: str | None = None) -> dict[str, str]:
        """{relative name: sha256} of the weight files of a folder (or just `only` when given)."""
        names = [folder / only] if only else sorted({p for pat in patterns for p in folder.rglob(pat) if p.is_file()})
        return {str(p.relative_to(folder)): self.file(p) for p in names}


def side_identity(spec: Any, hasher: FileHasher) -> dict:
    """The fingerprinted fields of one side (a ModelSpec, its dict, or a DictConfig turned dict)."""
    d = _as_dict(spec)
    path = str(d.get("path") or "")
    if not path:
        raise ValueError(f"a model side needs a path to be fingerprinted; got {d!r}")
    ident = {"path": path, "revision": d.get("revision"), "dtype": d.get("dtype", "float32"),
             "quantization": d.get("quantization"), "system_prompt": d.get("system_prompt") or None,
             "prefix": d.get("prefix") or None}
    if path == "tiny-random":
        ident["seed"] = d.get("seed", 0)
    ident["weights"] = _weights(path, d.get("gguf_file"), hasher)
    adapter = d.get("adapter")
    ident["adapter"] = None if not adapter else (
        {"files": hasher.folder(Path(adapter).expanduser())} if Path(adapter).expanduser().is_dir() else {"id": adapter}
    )
    return ident


def _weights(path: str, gguf_file: str | None, hasher: FileHasher) -> dict | None:
    if path.startswith("embedded:"):
        from cdx.models.embedded import embedded_gguf

        folder, name = embedded_gguf(path.split(":", 1)[1])
        return {"files": hasher.folder(folder, only=name)}
    local = Path(path).expanduser()
    if local.is_dir():
        return {"files": hasher.folder(local, only=gguf_file)}
    return None  # a hub id: path + revision identify it (we do not download to hash)


def pair_identity(model_cfg: Any, hasher: FileHasher | None = None) -> dict:
    """Both sides' identities plus the pair-level settings, from cfg.model (dict, DictConfig or ModelPair specs)."""
    d = _as_dict(model_cfg)
    missing = [k for k in ("starting", "comparison") if k not in d]
    if missing:
        raise ValueError(f"a pair config needs starting and comparison sides; missing {missing} in keys {sorted(d)}")
    hasher = hasher or FileHasher()
    return {"starting": side_identity(d["starting"], hasher), "comparison": side_identity(d["comparison"], hasher),
            "interpolation": d.get("interpolation"), "chat_template": bool(d.get("chat_template", True))}


def pair_fingerprint(model_cfg: Any, hasher: FileHasher | None = None) -> tuple[str, dict]:
    """(sha256 hex of the canonical identity JSON, the identity) of a pair config."""
    ident = pair_identity(model_cfg, hasher)
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest(), ident


def pair_label(model_cfg: Any) -> str:
    """A short human name, e.g. `smollm2-135m vs smollm2-135m-pirate`."""
    d = _as_dict(model_cfg)

    def one(side) -> str:
        s = _as_dict(side)
        name = s.get("name") or (s["path"] if not s.get("adapter") else f"{s['path']}+{Path(str(s['adapter'])).name}")
        if s.get("path") == "tiny-random" and not s.get("name"):
            name = f"tiny-random(seed={s.get('seed', 0)})"
        if s.get("system_prompt"):
            name += f" [system: {str(s['system_prompt'])[:40]}]"
        return name

    lam = d.get("interpolation")
    return f"{one(d['starting'])} vs {one(d['comparison'])}" + (f" (lambda={lam})" if lam is not None else "")


def _as_dict(x: Any) -> dict:
    if x is None:
        return {}
    if is_dataclass(x) and not isinstance(x, type):
        return asdict(x)
    if hasattr(x, "spec") and is_dataclass(x.spec) and not isinstance(x.spec, type):  # a cdx.models Side
        return asdict(x.spec)
    if hasattr(x, "starting") and hasattr(x.starting, "spec"):  # a loaded cdx.models ModelPair
        return {"starting": asdict(x.starting.spec), "comparison": asdict(x.comparison.spec),
                "interpolation": x.interpolation, "chat_template": x.starting.chat_template}
    try:
        from omegaconf import DictConfig, OmegaConf

        if isinstance(x, DictConfig):
            return cast(dict, OmegaConf.to_container(x, resolve=True))
    except ImportError:  # pragma: no cover
        pass
    if isinstance(x, dict):
        return x
    raise TypeError(f"expected a model config (dict, DictConfig or ModelSpec); got {type(x).__name__}")
