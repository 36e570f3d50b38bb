"""task=search end to end on the tiny random pair with a scripted assistant."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from omegaconf import open_dict

import cdx.tasks.search as search_task
from cdx.decoding.prompts import BuiltinPrompts
from cdx.io import read_records
from cdx.models.embeddings import SentenceEmbedder
from cdx.run import run
from cdx.search import SearchFailed, load_instructions
from cdx.search.subsample import diversity_scores, minmax, stats

SEEDS = load_instructions("persona").seeds


@pytest.fixture
def built(monkeypatch):
    """The assistants that run() builds, to look at the requests they got."""
    made = []
    original = search_task.build_assistant

    def capture(spec):
        a = original(spec)
        made.append(a)
        return a

    monkeypatch.setattr(search_task, "build_assistant", capture)
    return made


def with_assistant(cfg, **values):
    with open_dict(cfg):
        for k, v in values.items():
            cfg.assistant[k] = v
    return cfg


def test_outputs_stats_and_headline_numbers(make_cfg, capsys):
    cfg = make_cfg("search.n_cycles=2", "search.top_n=3", "report.print_top=true")
    result = run(cfg)
    out = cfg.output_dir
    bank = read_records(f"{out}/bank.jsonl")
    assert [b["prompt"] for b in bank[:8]] == SEEDS and [b["cycle"] for b in bank] == [0] * 8 + [1] * 3 + [2] * 3
    assert len({b["prompt"] for b in bank}) == len(bank) and [b["id"] for b in bank] == list(range(14))
    for b in bank:
        assert set(b) >= {"prompt", "divergence", "responses", "criterion", "diversity", "cycle", "repeat"}
        assert len(b["sample_divergences"]) == len(b["responses"]) == 2
        assert b["divergence"] == pytest.approx(np.mean(b["sample_divergences"]))
    emb = np.load(f"{out}/embeddings.npy")
    assert emb.shape == (14, 384)
    assert emb == pytest.approx(SentenceEmbedder().embed([b["prompt"] for b in bank]), abs=1e-5)
    assert [b["diversity"] for b in bank] == pytest.approx(diversity_scores(emb, "harmonic").tolist())
    div = np.array([b["divergence"] for b in bank])
    cycles = read_records(f"{out}/stats.jsonl")
    assert [c["ok"] for c in cycles] == [True, True]
    for c, size in zip(cycles, (11, 14)):
        ids = c["subsample"]["ids"]
        assert len(ids) == 6 and len(set(ids)) == 6 and max(ids) < size - 3  # drawn from the bank before the cycle
        assert c["subsample"]["divergence"] == pytest.approx(stats(div[ids]))
        assert c["bank"]["divergence"] == pytest.approx(stats(div[:size])) and c["bank"]["size"] == size
        assert c["new"]["divergence"] == pytest.approx(stats(div[size - 3: size]))
    assert result["seed_divergence_mean"] == pytest.approx(div[:8].mean())
    assert result["top_divergence_mean"] == pytest.approx(np.sort(div)[-3:].mean())
    assert result["new_divergence_mean"] == pytest.approx(div[8:].mean())
    assert (result["bank_size"], result["n_added"], result["cycles"], result["failed_cycles"]) == (14, 6, 2, 0)
    assert json.loads(open(f"{out}/summary.json").read())["top_divergence_mean"] == result["top_divergence_mean"]
    printed = capsys.readouterr().out
    assert "Top 3 prompts" in printed and "Bottom 3 prompts" in printed and "seeds" in printed


def test_requests_show_scaled_values_in_divergence_order(make_cfg, built):
    cfg = make_cfg("search.n_cycles=1", "search.assistant_temperature=0.3", "search.assistant_max_tokens=77",
                   "search.n_new_prompts=2")
    run(cfg)
    bank = read_records(f"{cfg.output_dir}/bank.jsonl")
    (call,) = built[0].calls
    assert (call["temperature"], call["max_tokens"]) == (0.3, 77)
    ids = read_records(f"{cfg.output_dir}/stats.jsonl")[0]["subsample"]["ids"]
    div = np.array([bank[i]["divergence"] for i in ids])
    assert list(div) == sorted(div, reverse=True)
    vals = np.round(10 * minmax(div), 1)
    user = call["messages"][1]["content"]
    for k, (i, v) in enumerate(zip(ids, vals), 1):
        assert f"{k}. (score {v:.1f}) {bank[i]['prompt']}" in user
    assert "Write 2 new questions" in user
    assert len(bank) == 8 + 2  # n_new_prompts caps what a reply adds


def test_hidden_and_random_values(make_cfg, built):
    run(make_cfg("search.n_cycles=1", "search.context_values=hidden", out="hidden"))
    user = built[0].calls[0]["messages"][1]["content"]
    assert "score" not in user and load_instructions("persona").values_note not in user
    cfg = make_cfg("search.n_cycles=1", "search.context_values=random", out="random")
    run(cfg)
    rec = read_records(f"{cfg.output_dir}/stats.jsonl")[0]
    bank = read_records(f"{cfg.output_dir}/bank.jsonl")
    real = np.round(10 * minmax(np.array([bank[i]["divergence"] for i in rec["subsample"]["ids"]])), 1)
    assert rec["shown_values"] == sorted(rec["shown_values"], reverse=True) and rec["shown_values"] != real.tolist()
    assert f"(score {rec['shown_values'][0]:.1f})" in built[1].calls[0]["messages"][1]["content"]


def test_criterion_required_keeps_only_yes(make_cfg, built):
    cfg = make_cfg("search.n_cycles=2", "search.criterion.required=true", "search.criterion.max_tokens=5")
    with_assistant(cfg, match={"gold coins?\nResponse:": "No.", "You judge chatbot answers": "Yes, it does."})
    run(cfg)
    bank = read_records(f"{cfg.output_dir}/bank.jsonl")
    assert not any("gold coins" in b["prompt"] for b in bank)
    assert [b["criterion"] for b in bank] == [1.0] * len(bank) and len(bank) == 8 + 2 + 2
    judge = [c for c in built[0].calls if c["messages"][0]["content"].startswith("You judge")]
    assert len(judge) == 8 + 3 + 3 and all((c["temperature"], c["max_tokens"]) == (0.0, 5) for c in judge)
    assert [r["n_rejected_by_criterion"] for r in read_records(f"{cfg.output_dir}/stats.jsonl")] == [1, 1]


def test_criterion_used_but_not_required_keeps_all_with_scores(make_cfg):
    cfg = make_cfg("search.n_cycles=1", "search.criterion.use=true")
    with_assistant(cfg, match={"gold coins?\nResponse:": "no", "You judge chatbot answers": "I am not sure"})
    run(cfg)
    bank = read_records(f"{cfg.output_dir}/bank.jsonl")
    assert len(bank) == 11
    assert [b["criterion"] for b in bank] == [None] * 9 + [0.0, None]  # prompt 2 of the reply is about coins


def test_failed_cycle_gets_one_repair_request_then_counts(make_cfg, built, caplog):
    cfg = make_cfg("search.n_cycles=1", "search.max_failed_cycles=2")
    with_assistant(cfg, replies=["I cannot.", "Still nothing.", "1. A good new prompt {seed}"], loop=False)
    with caplog.at_level(logging.WARNING, logger="cdx.search.finder"):
        result = run(cfg)
    calls = built[0].calls
    assert len(calls) == 3
    assert calls[1]["messages"][-2:] == [{"role": "assistant", "content": "I cannot."},
                                        {"role": "user", "content": load_instructions("persona").repair}]
    recs = read_records(f"{cfg.output_dir}/stats.jsonl")
    assert [r["ok"] for r in recs] == [False, True]
    assert recs[0]["reason"] == "no prompts in the reply" and recs[0]["replies"] == ["I cannot.", "Still nothing."]
    # a failed cycle's line states why and has no `new`; a successful one the reverse (CycleRecord.dump)
    assert list(recs[0]) == ["subsample", "repeat", "attempt", "seed", "shown_values", "replies", "n_parsed", "reason",
                             "ok", "cycle", "failed_cycles", "bank"] and recs[0]["cycle"] is None
    assert "reason" not in recs[1] and recs[1]["new"]["size"] == 1
    assert "cycle failed (no prompts in the reply), 1/2 failed cycles" in caplog.text
    assert (result["cycles"], result["failed_cycles"], result["n_added"]) == (1, 1, 1)


def test_too_many_failed_cycles_stop_with_a_clear_error_and_keep_the_bank(make_cfg):
    cfg = make_cfg("search.max_failed_cycles=2")
    with_assistant(cfg, replies=["no list here"], loop=True)
    with pytest.raises(SearchFailed, match="2 failed cycles"):
        run(cfg)
    assert len(read_records(f"{cfg.output_dir}/bank.jsonl")) == 8
    assert [r["ok"] for r in read_records(f"{cfg.output_dir}/stats.jsonl")] == [False, False]
    assert json.loads(open(f"{cfg.output_dir}/state.json").read())["failed"] == 2


def test_duplicates_of_the_bank_and_within_a_reply_are_dropped(make_cfg):
    cfg = make_cfg("search.n_cycles=1", "search.max_failed_cycles=1")
    with_assistant(cfg, replies=["1. Tell me about YOURSELF!\n2. What is your favorite food?\n"
                                 "3. A brand new question {seed}?\n4. a brand new question {seed}"])
    run(cfg)
    rec = read_records(f"{cfg.output_dir}/stats.jsonl")[0]
    # 4 parsed (the parser keeps "...?" and "..." apart); 2 exact duplicates (1 of a seed, 1 within the reply)
    assert (rec["n_parsed"], rec["n_exact_duplicates"], rec["n_near_duplicates"]) == (4, 2, 1)
    bank = read_records(f"{cfg.output_dir}/bank.jsonl")
    assert len(bank) == 9 and bank[-1]["prompt"].startswith("A brand new question")
    only_dups = make_cfg("search.n_cycles=1", "search.max_failed_cycles=1", out="dups")
    with_assistant(only_dups, replies=["1. Tell me about yourself.\n2. Describe your home"])
    with pytest.raises(SearchFailed):
        run(only_dups)
    assert read_records(f"{only_dups.output_dir}/stats.jsonl")[0]["reason"] == "only duplicates"


def test_repeats_start_again_from_the_seeds(make_cfg):
    cfg = make_cfg("search.n_cycles=1", "search.n_repeat=2")
    run(cfg)
    bank = read_records(f"{cfg.output_dir}/bank.jsonl")
    assert [(b["repeat"], b["cycle"]) for b in bank] == [(0, 0)] * 8 + [(0, 1)] * 3 + [(1, 0)] * 8 + [(1, 1)] * 3
    assert [b["prompt"] for b in bank[11:19]] == SEEDS
    rec = read_records(f"{cfg.output_dir}/stats.jsonl")
    assert all(11 <= i < 19 for i in rec[1]["subsample"]["ids"])  # repeat 2 sees only its own bank


def test_seeds_from_prompts_or_an_earlier_bank(make_cfg):
    cfg = make_cfg("search.n_cycles=1", "search.seeds=prompts", "prompts.limit=5", out="a")
    run(cfg)
    first = read_records(f"{cfg.output_dir}/bank.jsonl")
    assert [b["prompt"] for b in first[:5]] == BuiltinPrompts(limit=5).load() and first[5]["cycle"] == 1
    again = make_cfg("search.n_cycles=1", "search.seeds=bank", f"search.seed_bank={cfg.output_dir}", out="b")
    run(again)
    second = read_records(f"{again.output_dir}/bank.jsonl")
    assert [b["prompt"] for b in second[:8]] == [b["prompt"] for b in first] and second[8]["cycle"] == 1
    with pytest.raises(ValueError, match="seed_bank"):
        run(make_cfg("search.seeds=bank", out="c"))


def test_an_existing_run_needs_resume_and_typos_are_errors(make_cfg):
    cfg = make_cfg("search.n_cycles=1")
    run(cfg)
    with pytest.raises(FileExistsError, match="resume=true"):
        run(make_cfg("search.n_cycles=1"))
    with pytest.raises(ValueError, match="search.n_cycle"):
        run(make_cfg("+search.n_cycle=2", out="typo"))
    with pytest.raises(ValueError, match="context_values"):
        run(make_cfg("search.context_values=maybe", out="bad"))
    with pytest.raises(ValueError, match="define no criterion"):
        run(make_cfg(f"search.instructions={_no_criterion(cfg.output_dir)}", "search.criterion.use=true", out="nc"))


def test_metric_and_diversity_options_reach_the_outputs(make_cfg):
    cfg = make_cfg("search.n_cycles=1", "search.metric=js_mean", "search.subsample.diversity=nearest")
    run(cfg)
    assert json.loads(open(f"{cfg.output_dir}/summary.json").read())["metric"] == "js_mean"
    bank = read_records(f"{cfg.output_dir}/bank.jsonl")
    emb = np.load(f"{cfg.output_dir}/embeddings.npy")
    assert [b["diversity"] for b in bank] == pytest.approx(diversity_scores(emb, "nearest").tolist())
    assert all(0 <= b["divergence"] <= np.log(2) + 1e-6 for b in bank)  # JS is at most log 2


def _no_criterion(folder) -> str:
    path = f"{folder}/plain.yaml"
    with open(path, "w") as f:
        f.write("system: S\nuser: '{examples} {n}'\nseeds: [Hello there]\n")
    return path


@pytest.mark.parametrize("select_high", [True, False])
def test_zero_temperature_shows_the_top_or_bottom_by_divergence(make_cfg, select_high):
    cfg = make_cfg("search.n_cycles=1", "search.subsample.temperature=0", "search.subsample.diversity_weight=0",
                   "search.subsample.size=3", f"search.subsample.select_high={select_high}")
    run(cfg)
    seeds = read_records(f"{cfg.output_dir}/bank.jsonl")[:8]
    ranked = sorted(range(8), key=lambda i: seeds[i]["divergence"], reverse=True)
    hand = ranked[:3] if select_high else sorted(ranked[-3:], key=lambda i: -seeds[i]["divergence"])
    assert read_records(f"{cfg.output_dir}/stats.jsonl")[0]["subsample"]["ids"] == hand
