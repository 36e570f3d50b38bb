import threading
import time

import pytest
import torch

from cdx.models import gguf_cache


def test_two_concurrent_conversions_convert_once(tmp_path, monkeypatch):
    (tmp_path / "m.gguf").write_bytes(b"fake gguf")
    calls = []

    def fake_convert(path, out):
        calls.append(path)
        time.sleep(0.3)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(gguf_cache, "_convert", fake_convert)
    results = []
    threads = [threading.Thread(target=lambda: results.append(gguf_cache.converted_dir(tmp_path, "m.gguf",
                                                                                    tmp_path / "cache")))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results[0] == results[1]
    assert (results[0] / "config.json").is_file()
    assert not [p for p in (tmp_path / "cache" / "gguf").iterdir() if p.name.startswith(".tmp-")]


def test_failed_conversion_leaves_no_cache_entry(tmp_path, monkeypatch):
    (tmp_path / "m.gguf").write_bytes(b"x")

    def boom(path, out):
        (out / "partial").write_text("half")
        raise RuntimeError("killed")

    monkeypatch.setattr(gguf_cache, "_convert", boom)
    with pytest.raises(RuntimeError):
        gguf_cache.converted_dir(tmp_path, "m.gguf", tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache" / "gguf").iterdir() if not p.name.endswith(".lock")] == []


def test_key_changes_when_the_file_changes(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"one")
    k1 = gguf_cache.gguf_key(f)
    f.write_bytes(b"three")
    assert gguf_cache.gguf_key(f) != k1


def test_missing_gguf_file_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.gguf does not exist"):
        gguf_cache.converted_dir(tmp_path, "nope.gguf")


@pytest.mark.slow
def test_real_gguf_cached_copy_gives_identical_logits():
    from transformers import AutoModelForCausalLM

    from cdx.models import ModelSpec, load_model
    from cdx.models.embedded import embedded_gguf

    folder, name = embedded_gguf("smollm2-135m-instruct")
    cached, tok = load_model(ModelSpec(path="embedded:smollm2-135m-instruct"))
    direct = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=name, dtype=torch.float32).eval()
    ids = torch.tensor([tok("The quick brown fox jumps over the lazy dog.").input_ids])
    with torch.no_grad():
        assert torch.equal(cached(input_ids=ids).logits, direct(input_ids=ids).logits)
    t = time.perf_counter()
    from cdx.models.loading import _load_uncached

    _load_uncached(ModelSpec(path="embedded:smollm2-135m-instruct"), None)
    print(f"\nreload of the converted embedded model: {time.perf_counter() - t:.2f} s")
