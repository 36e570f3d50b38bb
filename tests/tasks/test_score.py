import pytest

from cdx.io import read_records
from cdx.run import run
from tests.conftest import compose


def test_score_a_previous_run_reproduces_its_decode_time_metrics(tmp_path):
    dec_dir, score_dir = tmp_path / "decode", tmp_path / "score"
    run(compose(["model=tiny_random", "prompts.limit=3", "decoding.max_new_tokens=5", "report.print_top=false"], dec_dir))
    overrides = ["model=tiny_random", "task=score", "report.print_top=false", "prompts=previous_run",
                 f"prompts.path={dec_dir}"]
    run(compose(overrides, score_dir))
    gen = read_records(dec_dir / "generations.jsonl")
    scored = read_records(score_dir / "scores.jsonl")
    assert len(gen) == len(scored)
    for g, s in zip(gen, scored):  # the run's own token ids are re-scored exactly
        assert s["token_ids"] == g["token_ids"]
        for k in ("kl_sc", "js", "logp_s", "logp_c"):
            assert s["tokens"][k] == pytest.approx(g["tokens"][k], rel=1e-4, abs=1e-5)
    assert (score_dir / "summary.json").is_file() and (score_dir / "report.html").is_file()


def test_score_raw_texts_builtin(tmp_path):
    metrics = run(compose(["model=tiny_random", "task=score", "prompts.limit=4", "report.print_top=false"], tmp_path))
    recs = read_records(tmp_path / "scores.jsonl")
    assert len(recs) == 4 and metrics["n_texts"] == 4
    # raw text with no context: the first token is context, every later token is scored
    from cdx.models.tiny import tiny_tokenizer

    n = len(tiny_tokenizer()(recs[0]["prompt"] or "").input_ids)
    assert n == 0 and recs[0]["metrics"]["n_tokens"] == len(recs[0]["token_ids"])
