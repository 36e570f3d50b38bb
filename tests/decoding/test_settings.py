"""One decoding config: DecodeSettings is the decoder's only statement of its options, base.yaml
holds its defaults, the presets state only what differs, and the analysis sampler extends it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from pydantic import ValidationError

from cdx.analysis.sampling import make_decoder
from cdx.decoding import ContrastiveDecoder, DecodeSettings, ProbDiff
from cdx.io.settings import SampleSettings
from tests.conftest import CONF, compose

DECODING = Path(CONF) / "decoding"
PRESETS = sorted(p.stem for p in DECODING.glob("*.yaml") if p.stem != "base")
NOT_OPTIONS = {"_target_", "pair", "rule", "defaults"}


def raw(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(DECODING / f"{name}.yaml"), resolve=False)


def test_base_yaml_lists_every_option_with_the_records_default():
    base = {k: v for k, v in raw("base").items() if k not in NOT_OPTIONS}
    assert set(base) == set(DecodeSettings.model_fields)
    assert base.pop("seed") == "${seed}"  # the run's seed
    assert DecodeSettings(**base) == DecodeSettings()
    assert DecodeSettings(**base).model_dump() == {**DecodeSettings().model_dump()}


@pytest.mark.parametrize("name", PRESETS)
def test_each_preset_extends_base_and_restates_nothing_it_inherits(name):
    mine = raw(name)
    parents = [d for d in mine.get("defaults", []) if d != "_self_"]
    assert len(parents) == 1, f"{name} should extend one preset or base, not {parents}"
    inherited = raw("base") if parents[0] == "base" else OmegaConf.to_container(
        compose([f"decoding={parents[0]}"]).decoding, resolve=False)
    same = sorted(k for k, v in mine.items() if k not in NOT_OPTIONS and inherited.get(k) == v)
    assert same == [], f"{name}.yaml restates {same} with the value it already inherits"


@pytest.mark.parametrize("name", PRESETS)
def test_each_composed_preset_is_a_valid_record(name):
    d = OmegaConf.to_container(compose([f"decoding={name}", "seed=7"]).decoding, resolve=True)
    s = DecodeSettings(**{k: v for k, v in d.items() if k not in NOT_OPTIONS})
    assert s.seed == 7


def test_keywords_and_a_record_build_the_same_decoder_and_the_same_texts(tiny_pair):
    rule = ProbDiff(1.0, -1.0)
    by_kw = ContrastiveDecoder(tiny_pair, rule, max_new_tokens=6, generations_per_prefix=2, seed=4)
    record = DecodeSettings(max_new_tokens=6, generations_per_prefix=2, seed=4)
    by_record = ContrastiveDecoder(tiny_pair, rule, record)
    assert by_kw.settings == by_record.settings == record
    # keywords override the record's fields, and are checked like them
    assert ContrastiveDecoder(tiny_pair, rule, record, seed=9).settings == record.but(seed=9)
    a, b = by_kw.generate_batch(["hello", "one two"]), by_record.generate_batch(["hello", "one two"])
    assert [g.token_ids for g in a] == [g.token_ids for g in b]


@pytest.mark.parametrize("options, named", [
    ({"max_new_token": 5}, "max_new_token"),
    ({"strategy": "greedy", "top_p": 0.9}, "top_p/top_k do nothing"),
    ({"strategy": "beam", "num_beams": 2, "generations_per_prefix": 3}, "exceeds num_beams=2"),
    ({"record_top_k": 21}, "record_top_k"),
    ({"stop_strings": "###"}, "must be a list"),
    ({"temperature": 0}, "temperature"),
])
def test_bad_options_are_refused_with_their_name(tiny_pair, options, named):
    with pytest.raises(ValueError, match=named):
        ContrastiveDecoder(tiny_pair, ProbDiff(1.0, -1.0), **options)


def test_settings_are_immutable_so_a_decoder_cannot_drift_from_its_record(tiny_pair):
    dec = ContrastiveDecoder(tiny_pair, ProbDiff(1.0, -1.0))
    with pytest.raises(ValidationError):
        dec.settings.max_new_tokens = 3  # type: ignore[misc]


def test_the_analysis_sampler_passes_every_decoder_option_through(tiny_pair):
    s = SampleSettings(samples_per_prompt=2, top_k=5, sampler="multinomial", stop_strings=["."],
                       min_new_tokens=1, record_top_k=2, max_new_tokens=7, seed=3)
    dec = make_decoder(tiny_pair, s, ("plain_s", "plain_c"))
    expected = DecodeSettings(top_k=5, sampler="multinomial", stop_strings=(".",), min_new_tokens=1, record_top_k=2,
                              max_new_tokens=7, seed=3, generations_per_prefix=4)
    assert dec.settings == expected


@pytest.mark.parametrize("options, named", [
    ({"generations_per_prefix": 3}, "samples_per_prompt"),
    ({"strategy": "greedy"}, "by sampling"),
    ({"alpha": 0}, "alpha"),
])
def test_the_analysis_sampler_refuses_what_it_would_ignore(options, named):
    with pytest.raises(ValueError, match=named):
        SampleSettings.of(**options)


# ---- record_top_k: both models' top-k next tokens at every generated token -------------------------


def teacher_forced_top(pair, prompt: str, tokens: list[int], k: int) -> dict[str, list]:
    """Reference: both models re-run over prompt + the first t tokens for every t, no cache."""
    out: dict[str, list] = {"ids_s": [], "logp_s": [], "ids_c": [], "logp_c": []}
    for side, model in (("s", pair.starting), ("c", pair.comparison)):
        ids = torch.tensor([model.prompt_ids(prompt) + tokens])
        with torch.no_grad():
            logp = torch.log_softmax(model.model(input_ids=ids).logits[0].float(), -1)
        start = len(model.prompt_ids(prompt)) - 1  # the position that predicts the first new token
        for t in range(len(tokens)):
            lp, top = logp[start + t].topk(k)
            out[f"ids_{side}"].append(top.tolist())
            out[f"logp_{side}"].append(lp.tolist())
    return out


@pytest.mark.parametrize("strategy, extra", [("sample", {"generations_per_prefix": 2}),
                                             ("beam", {"num_beams": 3, "generations_per_prefix": 2})])
def test_recorded_top_k_equals_a_teacher_forced_reference(tiny_pair, strategy, extra):
    dec = ContrastiveDecoder(tiny_pair, ProbDiff(1.0, -1.0), strategy=strategy, max_new_tokens=6,
                             record_top_k=4, seed=2, **extra)
    gens = dec.generate_batch(["Tell me a story", "hi"])
    assert gens and all(g.top_next is not None for g in gens)
    for g in gens:
        ref = teacher_forced_top(tiny_pair, g.prompt, g.token_ids, 4)
        assert g.top_next is not None
        for key in ("ids_s", "ids_c"):
            assert g.top_next[key] == ref[key], (strategy, key)
        for key in ("logp_s", "logp_c"):
            assert torch.allclose(torch.tensor(g.top_next[key]), torch.tensor(ref[key]), atol=1e-4)
        # the drawn token's own log-prob is the one the decoder already records, when it is in the top k
        for t, tok in enumerate(g.token_ids):
            if tok in g.top_next["ids_s"][t]:
                j = g.top_next["ids_s"][t].index(tok)
                assert g.top_next["logp_s"][t][j] == pytest.approx(g.tokens["logp_s"][t], abs=1e-5)


def test_recording_top_k_observes_only(tiny_pair):
    kw = {"max_new_tokens": 8, "generations_per_prefix": 2, "seed": 11}
    plain = ContrastiveDecoder(tiny_pair, ProbDiff(1.0, -1.0), **kw).generate_batch(["a b c", "hello there"])
    topk = ContrastiveDecoder(tiny_pair, ProbDiff(1.0, -1.0), record_top_k=5, **kw).generate_batch(
        ["a b c", "hello there"])
    assert [g.token_ids for g in plain] == [g.token_ids for g in topk]
    assert [g.tokens for g in plain] == [g.tokens for g in topk]
    assert all(g.top_next is None for g in plain)
    assert all(len(g.top_next["ids_c"]) == len(g.token_ids) for g in topk if g.top_next is not None)


def test_top_next_record_fields_name_tokens_best_first(tiny_pair):
    g = ContrastiveDecoder(tiny_pair, ProbDiff(1.0, -1.0), max_new_tokens=4, record_top_k=3).generate_batch(["hi"])[0]
    fields = g.top_next_fields(tiny_pair.tokenizer)["top_next"]
    assert len(fields) == len(g.token_ids)
    for t, entry in enumerate(fields):
        assert [tok for tok, _ in entry["s"]] == [tiny_pair.tokenizer.decode([i]) for i in g.top_next["ids_s"][t]]
        lps = [lp for _, lp in entry["c"]]
        assert lps == sorted(lps, reverse=True)


def test_the_analysis_config_takes_any_decoding_option_and_refuses_what_it_would_ignore():
    from cdx.config import ConfigError, validate_config

    ok = compose(["task=analyze", "model=tiny_random", "+analysis.sample.record_top_k=2", "+analysis.sample.top_k=5",
                  "+analysis.validate.sampling.sampler=multinomial", "+analysis.sample.repetition_penalty=1.3"])
    assert validate_config(ok) == []
    for bad, named in (("+analysis.sample.generations_per_prefix=3", "use samples_per_prompt"),
                       ("+analysis.validate.sampling.top_p=1.5", "analysis.validate.sampling.top_p=1.5"),
                       ("+analysis.sample.repetition_penalty=0", "analysis.sample.repetition_penalty=0"),
                       ("+analysis.sample.beams=2", "analysis.sample.beams is not an option")):
        with pytest.raises(ConfigError, match=named):
            validate_config(compose(["task=analyze", "model=tiny_random", bad]))
