import json

import pytest

from cdx.io import read_records
from cdx.run import run
from tests.conftest import compose

FAST = ["model=tiny_random", "prompts.limit=5", "decoding.max_new_tokens=6", "decoding.batch_size=2",
        "report.print_top=false"]


def test_decode_writes_three_outputs(tmp_path, capsys):
    metrics = run(compose(FAST, tmp_path))
    recs = read_records(tmp_path / "generations.jsonl")
    assert len(recs) == 5 * 2  # generations_per_prefix=2
    r = recs[0]
    for key in ("id", "prompt", "continuation", "token_ids", "token_strs", "tokens", "metrics", "models", "decoding", "seed"):
        assert key in r
    assert len(r["token_strs"]) == len(r["token_ids"]) == len(r["tokens"]["kl_sc"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    all_kl = [v for rec in recs for v in rec["tokens"]["kl_sc"]]
    assert summary["token"]["kl_sc"]["mean"] == pytest.approx(sum(all_kl) / len(all_kl))
    assert metrics["kl_sc_mean"] == pytest.approx(summary["token"]["kl_sc"]["mean"])
    html = (tmp_path / "report.html").read_text()
    distinct = {(r["prompt"], r["continuation"]) for r in recs}  # the report shows identical samples once
    assert html.count("class='card'") == len(distinct) and "title='kl_sc=" in html
    assert str(tmp_path) in capsys.readouterr().out  # one-line summary names the outputs


def killed_copy(full_dir, dst, n_lines: int, partial: int = 30):
    """`dst` as a kill after `n_lines` records (plus `partial` bytes of the next) would leave it."""
    import json

    lines = (full_dir / "generations.jsonl").read_bytes().split(b"\n")
    dst.mkdir()
    (dst / "generations.jsonl").write_bytes(b"".join(line + b"\n" for line in lines[:n_lines]) + lines[n_lines][:partial])
    info = json.loads((full_dir / "run.json").read_text())
    (dst / "run.json").write_text(json.dumps({**info, "status": "running"}))


def test_resume_after_kill_loses_nothing_and_duplicates_nothing(tmp_path):
    full_dir, killed_dir = tmp_path / "full", tmp_path / "killed"
    run(compose(FAST, full_dir))
    full = read_records(full_dir / "generations.jsonl")
    # A kill in the middle of batch 2: one batch complete, part of the next, half a line.
    killed_copy(full_dir, killed_dir, 5)
    with pytest.raises(FileExistsError, match="resume=true"):
        run(compose(FAST, killed_dir))
    run(compose([*FAST, "resume=true"], killed_dir))
    resumed = read_records(killed_dir / "generations.jsonl")
    assert [r["id"] for r in resumed] == [r["id"] for r in full]
    assert [r["token_ids"] for r in resumed] == [r["token_ids"] for r in full]
    assert (killed_dir / "generations.jsonl").read_bytes() == (full_dir / "generations.jsonl").read_bytes()


def test_terminal_colours_are_switchable(tmp_path, capsys):
    run(compose([*FAST, "report.print_top=true", "report.color=false", "report.top_n=2"], tmp_path))
    out = capsys.readouterr().out
    assert "\n#1 " in out and "\n#2 " in out and "\n#3 " not in out and "\x1b[" not in out


@pytest.mark.parametrize("decoding", ["greedy", "topp", "beam", "amplify"])
def test_every_decoding_config_runs(tmp_path, decoding):
    run(compose([*FAST, f"decoding={decoding}", "prompts.limit=2"], tmp_path))
    recs = read_records(tmp_path / "generations.jsonl")
    assert recs and all(r["metrics"]["n_tokens"] > 0 for r in recs)


def test_sampler_option_reaches_the_decoder(tmp_path):
    """decoding.sampler picks how tokens are drawn: same seed, different draws; the run records which."""
    runs = {}
    for sampler in ("inverse_cdf", "multinomial"):
        run(compose([*FAST, "prompts.limit=2", f"decoding.sampler={sampler}"], tmp_path / sampler))
        runs[sampler] = [r["token_ids"] for r in read_records(tmp_path / sampler / "generations.jsonl")]
        info = json.loads((tmp_path / sampler / "summary.json").read_text())
        assert info["decoding"]["sampler"] == sampler
    assert runs["inverse_cdf"] != runs["multinomial"]


def test_decode_says_what_changed_in_words_first(tmp_path, capsys):
    from cdx.analysis.quick import quick_summary

    run(compose([*FAST[:-1], "report.print_top=true", "report.color=false"], tmp_path))
    recs = read_records(tmp_path / "generations.jsonl")
    summary = json.loads((tmp_path / "summary.json").read_text())
    # the same lines the analysis module derives from the records' own log-probs, stored and printed first
    assert summary["what_changed"] == quick_summary(recs, "tiny-random(seed=1)")
    out = capsys.readouterr().out.splitlines()
    assert out[: len(summary["what_changed"])] == summary["what_changed"]


def test_record_top_k_reaches_the_records_and_the_report(tmp_path):
    """decoding.record_top_k=3: every token of every record carries both models' top 3 at its step, best
    first, the drawn token among them with its own log-prob when it ranks; the report makes them clickable."""
    from cdx.io.records import TextRecord

    run(compose([*FAST, "prompts.limit=2", "decoding.record_top_k=3"], tmp_path))
    recs = read_records(tmp_path / "generations.jsonl")
    assert recs
    ranked = 0
    for r in recs:
        TextRecord.model_validate(r)  # one top_next entry per token, checked by the record schema
        assert len(r["top_next"]) == len(r["token_ids"])
        for t, entry in enumerate(r["top_next"]):
            for side in ("s", "c"):
                lps = [lp for _, lp in entry[side]]
                assert len(lps) == 3 and lps == sorted(lps, reverse=True)
                drawn = r["tokens"][f"logp_{side}"][t]
                assert drawn <= lps[0] + 1e-5  # nothing beats the top token
                if r["token_strs"][t] in [tok for tok, _ in entry[side]]:
                    ranked += 1
                    assert min(abs(lp - drawn) for tok, lp in entry[side] if tok == r["token_strs"][t]) < 1e-4
    assert ranked > 0
    html = (tmp_path / "report.html").read_text()
    assert "tabindex='0'" in html and "class='cdx-alt'" in html
    plain = tmp_path / "plain"
    run(compose([*FAST, "prompts.limit=2"], plain))
    assert all("top_next" not in r for r in read_records(plain / "generations.jsonl"))  # off by default
