"""The GPU script's logic on the CPU with a tiny shape (its figures need a GPU)."""

import pytest

from cdx import bench_gpu


def test_bench_gpu_runs_on_cpu_with_a_tiny_shape(tmp_path, capsys):
    out = tmp_path / "gpu.md"
    results = bench_gpu.main(["--shape", "tiny", "--device", "cpu", "--dtype", "float32", "--batches", "1,2",
                              "--tokens", "3", "--repeats", "1", "--out", str(out)])
    names = ["HF generate, one model", "two-model floor (bare cached steps)", "cdx two-model",
             "cdx shared-weights (2 contexts, 1 batch)", "cdx adapter pair, one batch (per-row adapter)",
             "cdx adapter pair, two passes over one base"]
    assert [(r.name, r.batch) for r in results] == [(n, b) for b in (1, 2) for n in names]
    by = {(r.name, r.batch): r for r in results}
    one = by["HF generate, one model", 1].bytes_per_step
    assert by["cdx shared-weights (2 contexts, 1 batch)", 1].bytes_per_step == one  # weights read once per step
    assert by["cdx two-model", 1].bytes_per_step == 2 * one
    lora = by["cdx adapter pair, two passes over one base", 1].bytes_per_step - 2 * one
    assert 0 < lora < one  # two passes over one base, plus the LoRA matrices
    assert by["cdx adapter pair, one batch (per-row adapter)", 1].bytes_per_step == one + lora
    r = by["cdx two-model", 2]
    assert r.tokens_per_s == pytest.approx(2 * 3 / r.seconds)
    assert r.floor_fraction == pytest.approx(r.bytes_per_step * 3 / r.bandwidth / r.seconds)
    text = out.read_text()
    assert "| bitsandbytes 4-bit | skipped: needs CUDA |" in text and "bandwidth floor reached" in text
    assert "bench_gpu: 12 rows" in capsys.readouterr().out


def test_cuda_requested_without_cuda_is_a_clear_exit():
    if bench_gpu.torch.cuda.is_available():
        pytest.skip("checks the no-CUDA message")
    with pytest.raises(SystemExit, match="CUDA is not available.*--shape tiny --device cpu"):
        bench_gpu.main([])
