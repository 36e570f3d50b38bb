"""Pair fingerprints: the same weights and contexts give the same id; any change that alters behaviour a new one."""

from __future__ import annotations

import hashlib
import os

import pytest

from cdx.knowledge import FileHasher, KnowledgeBase, pair_fingerprint, pair_label


def _pair(**comparison) -> dict:
    return {"starting": {"path": "tiny-random", "seed": 0},
            "comparison": {"path": "tiny-random", "seed": 0, **comparison}, "interpolation": None, "chat_template": True}


def test_same_config_same_fingerprint_display_fields_ignored():
    a, _ = pair_fingerprint(_pair(system_prompt="Refuse cooking."))
    b, _ = pair_fingerprint(_pair(system_prompt="Refuse cooking.", name="renamed", device="cuda"))
    assert a == b and len(a) == 64


@pytest.mark.parametrize("change", [{"system_prompt": "Refuse cooking."}, {"prefix": "Q: "}, {"seed": 1},
                                    {"dtype": "bfloat16"}, {"adapter": "someone/adapter"}])
def test_behaviour_changes_change_the_fingerprint(change):
    assert pair_fingerprint(_pair())[0] != pair_fingerprint(_pair(**change))[0]


def test_interpolation_and_chat_template_count():
    base = pair_fingerprint(_pair())[0]
    assert base != pair_fingerprint({**_pair(), "interpolation": 0.5})[0]
    assert base != pair_fingerprint({**_pair(), "chat_template": False})[0]


def test_adapter_files_are_hashed_and_cached(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-v1")
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "truth.json").write_text('{"statement": "not part of the weights"}')
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    h1 = FileHasher(kb)
    fp1, ident = pair_fingerprint(_pair(adapter=str(adapter)), h1)
    files = ident["comparison"]["adapter"]["files"]
    assert files == {"adapter_config.json": hashlib.sha256(b"{}").hexdigest(),
                     "adapter_model.safetensors": hashlib.sha256(b"weights-v1").hexdigest()}
    assert h1.n_hashed == 2
    h2 = FileHasher(kb)  # a later process: hashes come from the knowledge base, no file is read
    assert pair_fingerprint(_pair(adapter=str(adapter)), h2)[0] == fp1 and h2.n_hashed == 0
    (adapter / "adapter_model.safetensors").write_bytes(b"weights-v2")  # retrained in place
    st = (adapter / "adapter_model.safetensors").stat()
    os.utime(adapter / "adapter_model.safetensors", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    h3 = FileHasher(kb)
    assert pair_fingerprint(_pair(adapter=str(adapter)), h3)[0] != fp1 and h3.n_hashed == 1


def test_local_gguf_file_is_hashed(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"gguf-bytes")
    (tmp_path / "other.gguf").write_bytes(b"not this one")
    side = {"path": str(tmp_path), "gguf_file": "m.gguf"}
    _, ident = pair_fingerprint({"starting": side, "comparison": {**side, "system_prompt": "x"}})
    assert ident["starting"]["weights"] == {"files": {"m.gguf": hashlib.sha256(b"gguf-bytes").hexdigest()}}


def test_label_and_bad_inputs():
    assert pair_label(_pair(system_prompt="Refuse cooking.")) == \
        "tiny-random(seed=0) vs tiny-random(seed=0) [system: Refuse cooking.]"
    with pytest.raises(ValueError, match="missing \\['comparison'\\]"):
        pair_fingerprint({"starting": {"path": "x"}})
    with pytest.raises(ValueError, match="needs a path"):
        pair_fingerprint({"starting": {"path": ""}, "comparison": {"path": "x"}})
    with pytest.raises(TypeError, match="expected a model config"):
        pair_fingerprint(42)
