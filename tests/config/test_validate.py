"""validate_config: every shipped config passes; every bad value is refused, naming it and what is valid.

Bad values are set on a composed config with OmegaConf.update (what a command-line override
does after parsing), so the many cases stay fast; tests/test_cli.py runs the real CLI.
"""

from __future__ import annotations

import copy
import functools
import json
import re

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from cdx.config import ConfigError, validate_config
from cdx.errors import CdxUserError
from tests.conftest import CONF, compose

CUDA = torch.cuda.is_available()


@functools.cache
def _composed(groups: tuple[str, ...]):
    return compose(list(groups))


def config(*groups: str, **values):
    """The composed config with `groups` chosen, then `values` set ('__' stands for '.')."""
    cfg = copy.deepcopy(_composed(tuple(groups)))
    with open_dict(cfg):
        for key, value in values.items():
            OmegaConf.update(cfg, key.replace("__", "."), value, force_add=True)
    return cfg


def refused(cfg, pattern: str) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    msg = str(err.value)
    assert re.search(pattern, msg), msg
    return msg


def _names(group: str) -> list[str]:
    """The group's options; decoding/base.yaml is what presets extend, not an option (it has no rule)."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if p.stem != "base")


# ---- every shipped config validates -----------------------------------------------------------------


@pytest.mark.parametrize("choice", [f"{g}={n}" for g in ("model", "decoding", "prompts", "task", "search",
                                                           "assistant", "logger", "experiment") for n in _names(g)])
def test_every_shipped_config_validates(choice, tmp_path):
    extra = {"prompts=file": {"prompts.path": str(_txt(tmp_path))},
             "prompts=previous_run": {"prompts.path": str(_run_dir(tmp_path))},
             "model=smollm2_lora": {"model.comparison.adapter": str(tmp_path)},
             "task=summarize": {"sweep_dir": str(tmp_path)},
             "assistant=openai": {"assistant.api_key_env": None}}.get(choice, {})
    groups = (choice, "task=search") if choice.startswith(("search=", "assistant=")) else (choice,)
    cfg = config(*groups, **{k.replace(".", "__"): v for k, v in extra.items()})
    if choice.endswith("_4bit") and not CUDA:
        refused(cfg, r"quantization='4bit' cannot be used: bitsandbytes quantization needs a CUDA GPU")
    else:
        assert validate_config(cfg) == []


def test_other_groups_and_unknown_top_level_keys_pass():
    cfg = config(**{"my_new_group__anything": [1, 2], "analysis_like__n": 0})
    assert validate_config(cfg) == []


# ---- decoding, rules, model, report, task, top level: one case per bad value -------------------------

BAD_VALUES = [
    # id, groups, values, what the message must say
    ("top_p>1", (), {"decoding.top_p": 1.5}, r"decoding.top_p=1.5 is not valid: must be in \(0, 1\] \(or null for off\)"),
    ("top_p=0", (), {"decoding.top_p": 0.0}, r"decoding.top_p=0.0 is not valid: must be in \(0, 1\]"),
    ("top_k=0", (), {"decoding.top_k": 0}, r"decoding.top_k=0 is not valid: must be >= 1 \(or null for off\)"),
    ("top_k-negative", (), {"decoding.top_k": -3}, r"decoding.top_k=-3 is not valid: must be >= 1"),
    ("beams-with-sampling", (), {"decoding.num_beams": 4}, r"num_beams=4 does nothing with strategy=sample"),
    ("beam-with-one-beam", ("decoding=beam",), {"decoding.num_beams": 1, "decoding.generations_per_prefix": 1},
     r"strategy=beam with num_beams=1 is greedy"),
    ("beam-more-outputs-than-beams", ("decoding=beam",), {"decoding.generations_per_prefix": 5},
     r"generations_per_prefix=5 exceeds num_beams=4"),
    ("top_p-with-greedy", ("decoding=greedy",), {"decoding.top_p": 0.9}, r"top_p/top_k do nothing with strategy=greedy"),
    ("min>max-new-tokens", (), {"decoding.min_new_tokens": 60}, r"min_new_tokens=60 exceeds max_new_tokens=48"),
    ("max_new_tokens=0", (), {"decoding.max_new_tokens": 0}, r"decoding.max_new_tokens=0 is not valid: must be >= 1"),
    ("generations_per_prefix=0", (), {"decoding.generations_per_prefix": 0},
     r"decoding.generations_per_prefix=0 is not valid: must be >= 1"),
    ("batch_size=0", (), {"decoding.batch_size": 0}, r"decoding.batch_size=0 is not valid: must be >= 1"),
    ("temperature=0", (), {"decoding.temperature": 0.0}, r"decoding.temperature=0.0 is not valid: must be > 0"),
    ("temperature-nan", (), {"decoding.temperature": float("nan")}, r"temperature=nan is not valid: must be a finite"),
    ("strategy-unknown", (), {"decoding.strategy": "nucleus"}, r"strategy='nucleus' is not valid: use one of"),
    ("empty-stop-string", (), {"decoding.stop_strings": [""]}, r"stop_strings=\[''\] is not valid: an empty stop string"),
    ("parallel-unknown", (), {"decoding.parallel": "sometimes"}, r"decoding.parallel='sometimes' is not valid"),
    ("sampler-unknown", (), {"decoding.sampler": "gumbel"},
     r"decoding.sampler='gumbel' is not valid: use one of 'inverse_cdf' or 'multinomial'"),
    ("decoding-unknown-key", (), {"decoding.top_pp": 0.9}, r"decoding.top_pp is not an option of ContrastiveDecoder"),
    ("probdiff-weights-0-0", ("decoding=probdiff",), {"decoding.rule.starting_weight": 0.0, "decoding.rule.comparison_weight": 0.0},
     r"rule weights \(0, 0\) have no positive weight"),
    ("probdiff-no-positive-weight", ("decoding=probdiff",), {"decoding.rule.starting_weight": -1.0},
     r"rule weights \(-1, -1\) have no positive weight"),
    ("probdiff-weight-inf", ("decoding=probdiff",), {"decoding.rule.starting_weight": float("inf")},
     r"starting_weight=inf is not valid: must be a finite number"),
    ("probdiff-min-mass-1", ("decoding=probdiff",), {"decoding.rule.min_positive_mass": 1.0},
     r"min_positive_mass=1.0 is not valid: must be in \[0, 1\)"),
    ("gating-negative", (), {"decoding.rule.similarity_gating_intensity": -1.0},
     r"similarity_gating_intensity=-1.0 is not valid: must be >= 0"),
    ("nucleus-limit>1", (), {"decoding.rule.limit_to_starting_model_top_p": 1.2},
     r"limit_to_starting_model_top_p=1.2 is not valid: must be in \(0, 1\]"),
    ("rule-unknown-key", ("decoding=probdiff",), {"decoding.rule.alpha": 1.0}, r"decoding.rule.alpha is not an option of ProbDiff"),
    ("logitdiff-beta>1", ("decoding=amplify",), {"decoding.rule.plausibility_beta": 2.0},
     r"plausibility_beta=2.0 is not valid: must be in \[0, 1\]"),
    ("logitdiff-alpha-nan", ("decoding=amplify",), {"decoding.rule.alpha": float("nan")},
     r"alpha=nan is not valid: must be a finite number"),
    ("logitdiff-weights-0-0", ("decoding=amplify",),
     {"decoding.rule.alpha": None, "decoding.rule.starting_weight": 0.0, "decoding.rule.comparison_weight": 0.0},
     r"rule weights \(0, 0\) make every token equally likely"),
    ("logitdiff-alpha-and-weights", ("decoding=amplify",), {"decoding.rule.starting_weight": 2.0},
     r"give either alpha or starting_weight/comparison_weight"),
    ("logitdiff-amplified-unknown", ("decoding=amplify",), {"decoding.rule.amplified": "both"},
     r"amplified='both' is not valid: use one of"),
    ("interpolation-nan", ("model=tiny_random",), {"model.interpolation": float("nan")},
     r"model.interpolation=nan is not valid: must be a finite number"),
    ("interpolation-inf", ("model=tiny_random",), {"model.interpolation": float("inf")},
     r"model.interpolation=inf is not valid: must be a finite number"),
    ("quantize-tiny-random", ("model=tiny_random",), {"model.starting.quantization": "4bit"},
     r"model.starting.quantization='4bit' cannot be used: tiny-random models .* never quantized"),
    ("quantization-unknown", ("model=tiny_random",), {"model.comparison.quantization": "3bit"},
     r"model.comparison.quantization='3bit' is not valid: use one of"),
    ("dtype-unknown", ("model=tiny_random",), {"model.starting.dtype": "int4"}, r"dtype='int4' is not valid"),
    ("model-path-missing", ("model=tiny_random",), {"model.starting.path": "/no/such/model"},
     r"model.starting.path='/no/such/model' does not exist"),
    ("embedded-name-unknown", (), {"model.starting.path": "embedded:gpt-9"},
     r"'embedded:gpt-9' is not an embedded model; use one of \['embedded:smollm2-135m-instruct'\]"),
    ("adapter-missing", ("model=smollm2_lora",), {"model.comparison.adapter": "./no_adapter"},
     r"model.comparison.adapter='./no_adapter' does not exist"),
    ("adapter-unset", ("model=smollm2_lora",), {}, r"model.comparison.adapter is required but not set"),
    ("model-unknown-key", ("model=tiny_random",), {"model.starting.temperature": 0.5},
     r"model.starting.temperature is not an option of ModelSpec"),
    ("sort_key-unknown", (), {"report.sort_key": "kl"}, r"report.sort_key='kl' is not a per-text metric; use one of \["),
    ("token_metric-unknown", (), {"report.token_metric": "klsc"}, r"report.token_metric='klsc' is not a per-token metric"),
    ("report-top_n-0", (), {"report.top_n": 0}, r"report.top_n=0 is not valid: must be >= 1"),
    ("seed-negative", (), {"seed": -1}, r"(^|\s)seed=-1 is not valid: must be in \[0, 4294967295\]"),
    ("resume-not-bool", (), {"resume": "maybe"}, r"resume='maybe' is not valid: must be true or false"),
    ("score-batch_size-0", ("task=score",), {"task.batch_size": 0}, r"task.batch_size=0 is not valid: must be an integer >= 1"),
    ("summarize-sweep_dir-unset", ("task=summarize",), {}, r"sweep_dir is required but not set"),
    ("summarize-sweep_dir-missing", ("task=summarize",), {"sweep_dir": "/no/such/sweep"},
     r"sweep_dir='/no/such/sweep' is not a folder"),
]
NO_CUDA_CASES = [  # on a CUDA machine these settings are valid
    ("quantize-without-cuda", ("model=gpt2_pair",), {"model.starting.quantization": "8bit"},
     r"quantization='8bit' cannot be used: bitsandbytes quantization needs a CUDA GPU"),
    ("device-cuda-without-cuda", ("model=tiny_random",), {"model.starting.device": "cuda"},
     r"model.starting.device='cuda' but no CUDA GPU is visible"),
]
CUDA_CASES = [
    ("quantize-on-cpu-device", ("model=gpt2_pair",), {"model.starting.quantization": "4bit"},
     r"quantization='4bit' cannot be used: bitsandbytes runs on CUDA only, not device='cpu'"),
    ("quantize-and-interpolate", ("model=gpt2_pair",), {"model.starting.quantization": "4bit",
                                                        "model.starting.device": "cuda", "model.interpolation": 0.5},
     r"quantization='4bit' cannot be used: interpolation needs floating-point weights"),
]


@pytest.mark.parametrize(("groups", "values", "pattern"), [
    *[pytest.param(*c[1:], id=c[0]) for c in BAD_VALUES],
    *[pytest.param(*c[1:], id=c[0], marks=pytest.mark.skipif(CUDA, reason="valid on CUDA")) for c in NO_CUDA_CASES],
    *[pytest.param(*c[1:], id=c[0], marks=pytest.mark.skipif(not CUDA, reason="needs CUDA")) for c in CUDA_CASES],
])
def test_bad_value_is_refused(groups, values, pattern):
    refused(config(*groups, **{k.replace(".", "__"): v for k, v in values.items()}), pattern)


SEARCH_CASES = [
    ("n_cycles-0", {"search.n_cycles": 0}, r"search.n_cycles=0 must be >= 1"),
    ("search-generations_per_prefix-0", {"search.generations_per_prefix": 0},
     r"search.generations_per_prefix=0 is not valid: must be an integer >= 1"),
    ("search-min>max-new-tokens", {"decoding.min_new_tokens": 30}, r"min_new_tokens=30 exceeds max_new_tokens=24"),
    ("search-metric-unknown", {"search.metric": "divergence"}, r"search.metric='divergence' is not a per-text metric"),
    ("instructions-missing", {"search.instructions": "/no/such.yaml"}, r"search.instructions='/no/such.yaml'"),
    ("seed_bank-unset", {"search.seeds": "bank"}, r"search.seeds=bank needs search.seed_bank"),
    ("seed_bank-missing", {"search.seeds": "bank", "search.seed_bank": "/no/such/run"},
     r"search.seed_bank='/no/such/run' holds no bank.jsonl"),
    ("search-unknown-key", {"search.n_cylces": 3}, r"unknown option\(s\) \['search.n_cylces'\]"),
    ("seeds-from-missing-prompts-file",
     {"search.seeds": "prompts", "prompts": {"_target_": "cdx.decoding.prompts.PromptsFile", "path": "/no/p.txt"}},
     r"prompts file '/no/p.txt' does not exist"),
    ("openai-key-unset", {"assistant": {"_target_": "cdx.assistant.OpenAIAssistant", "model": "m", "api_key_env": "CDX_NO_SUCH_KEY"}},
     r"the environment variable CDX_NO_SUCH_KEY is not set"),
    ("openai-base_url-not-a-url", {"assistant": {"_target_": "cdx.assistant.OpenAIAssistant", "model": "m", "api_key_env": None,
                                                 "base_url": "localhost:8000"}}, r"must be an http\(s\) URL"),
    ("openai-timeout-0", {"assistant": {"_target_": "cdx.assistant.OpenAIAssistant", "model": "m", "api_key_env": None,
                                        "timeout": 0}}, r"assistant.timeout=0 is not valid: must be > 0"),
    ("local-assistant-top_p-0", {"assistant.top_p": 0.0}, r"assistant.top_p=0.0 is not valid: must be in \(0, 1\]"),
    ("assistant-unknown-key", {"assistant.temprature": 0.5}, r"assistant.temprature is not an option of LocalAssistant"),
    ("scripted-no-replies", {"assistant": {"_target_": "cdx.assistant.ScriptedAssistant", "replies": []}},
     r"assistant.replies=\[\] is not valid: must not be empty"),
]


@pytest.mark.parametrize(("values", "pattern"), [c[1:] for c in SEARCH_CASES], ids=[c[0] for c in SEARCH_CASES])
def test_bad_search_value_is_refused(values, pattern):
    cfg = config("task=search")
    with open_dict(cfg):
        for key, value in values.items():
            OmegaConf.update(cfg, key, value, force_add=True, merge=False)
    refused(cfg, pattern)


def test_dead_assistant_port_is_refused_before_any_work():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    cfg = config("task=search", "assistant=openai", assistant__api_key_env=None, assistant__base_url=url)
    refused(cfg, rf"assistant.base_url='{re.escape(url)}' cannot be reached \(connection refused at .*\): "
                 rf"is the server running at that URL\?")


def test_every_problem_is_listed_at_once():
    msg = refused(config(decoding__top_p=2.0, decoding__top_k=0, decoding__num_beams=3, report__token_metric="x"),
                  r"4 problems")
    assert msg.count("\n") == 4
    assert all(k in msg for k in ("decoding.top_p", "decoding.top_k", "num_beams=3 does nothing", "report.token_metric"))


def test_warnings_for_settings_that_do_nothing():
    assert validate_config(config("decoding=greedy", decoding__temperature=0.5)) == [
        "decoding.temperature=0.5 does nothing with strategy=greedy"]
    assert "greedy decoding" in validate_config(config("decoding=amplify", decoding__rule__plausibility_beta=1.0))[0]


def test_validation_runs_before_any_model_loads(monkeypatch, tmp_path):
    import cdx.models
    from cdx.run import run

    def no_load(*a, **k):
        raise AssertionError("a model was loaded before the config was validated")

    monkeypatch.setattr(cdx.models, "load_pair", no_load)
    (tmp_path / "p.jsonl").write_text('{"prompt": "ok"}\n{"prompt": 3}\n')
    cfg = config("prompts=file", "model=tiny_random", prompts__path=str(tmp_path / "p.jsonl"))
    with open_dict(cfg):
        cfg.output_dir = str(tmp_path / "out")
    with pytest.raises(ConfigError, match=r"p.jsonl:2: 'prompt' is 3 \(int\), not a string"):
        run(cfg)


def test_config_error_is_a_user_error_and_a_value_error():
    assert issubclass(ConfigError, CdxUserError) and issubclass(CdxUserError, ValueError)


# ---- prompts sources: files and earlier runs -----------------------------------------------------------


def _txt(tmp_path):
    f = tmp_path / "prompts.txt"
    f.write_text("Tell me a story.\nWhat is the sea?\n")
    return f


def _run_dir(tmp_path):
    d = tmp_path / "run"
    d.mkdir(exist_ok=True)
    (d / "generations.jsonl").write_text(json.dumps({"prompt": "p", "continuation": " c", "token_ids": [5]}) + "\n")
    return d


PROMPT_FILES = [
    # id, file name, content (bytes), extra options, message
    ("file-missing", "none.txt", None, {}, r"prompts file '.*none.txt' does not exist"),
    ("file-empty", "e.txt", b"", {}, r"prompts file '.*e.txt' is empty"),
    ("file-blank-lines-only", "b.txt", b"\n  \n\n", {}, r"prompts file '.*b.txt' is empty"),
    ("file-binary", "x.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", {}, r"is a binary file, not text"),
    ("file-not-utf8", "l.txt", "caf\u00e9\n".encode("latin-1"), {}, r"is not UTF-8 text \(byte 3\)"),
    ("file-suffix-unknown", "p.pdf", b"hello", {}, r"unsupported suffix '.pdf'; use a .txt, .jsonl or .csv file"),
    ("file-is-a-folder", "dir.txt", "DIR", {}, r"prompts file '.*dir.txt' is not a file"),
    ("jsonl-malformed-line", "p.jsonl", b'{"prompt": "a"}\n{"prompt": "b"\n{"prompt": "c"}\n', {},
     r"p.jsonl:2 is not valid JSON"),
    ("jsonl-line-not-object", "p.jsonl", b'{"prompt": "a"}\n["b"]\n', {}, r"p.jsonl:2 is a JSON list, not an object"),
    ("jsonl-value-int", "p.jsonl", b'{"prompt": 12}\n', {}, r"p.jsonl:1: 'prompt' is 12 \(int\), not a string"),
    ("jsonl-value-null", "p.jsonl", b'{"prompt": null}\n', {}, r"p.jsonl:1: 'prompt' is None \(NoneType\), not a string"),
    ("jsonl-value-list", "p.jsonl", b'{"prompt": ["a"]}\n', {}, r"'prompt' is \['a'\] \(list\), not a string"),
    ("jsonl-value-empty", "p.jsonl", b'{"prompt": "  "}\n', {}, r"p.jsonl:1: 'prompt' is an empty string"),
    ("jsonl-key-missing", "p.jsonl", b'{"text": "a"}\n', {}, r"p.jsonl:1 has no key 'prompt' \(prompts.key\); keys there: \['text'\]"),
    ("csv-column-missing", "p.csv", b"text\nhello\n", {}, r"has no column 'prompt' \(prompts.column\); columns: \['text'\]"),
    ("csv-short-row", "p.csv", b"id,prompt\n1,hello\n2\n", {}, r"p.csv:3 has no value in column 'prompt'"),
    ("csv-header-only", "p.csv", b"id,prompt\n", {}, r"holds no prompts"),
    ("limit-0", "ok.txt", b"a\nb\n", {"limit": 0}, r"prompts.limit=0 is not valid: use an integer >= 1, or null"),
]


@pytest.mark.parametrize(("name", "content", "options", "pattern"), [c[1:] for c in PROMPT_FILES],
                         ids=[c[0] for c in PROMPT_FILES])
def test_bad_prompts_file_is_refused(tmp_path, name, content, options, pattern):
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    values = {"prompts__path": str(path), **{f"prompts__{k}": v for k, v in options.items()}}
    refused(config("prompts=file", **values), pattern)


PREVIOUS_RUNS = [
    # id, generations.jsonl content (None: no file), message
    ("run-folder-missing", "NOFOLDER", r"prompts.path='.*' does not exist: give an earlier run's output folder"),
    ("run-without-records", None, r"holds no generations.jsonl or scores.jsonl: give the output folder of a finished"),
    ("run-records-empty", b"", r"run records file '.*generations.jsonl' is empty"),
    ("run-record-malformed-middle", b'{"prompt": "a", "continuation": "b"}\nnot json\n{"prompt": "c", "continuation": "d"}\n',
     r"generations.jsonl:2 is not valid JSON"),
    ("run-record-no-continuation", b'{"prompt": "a"}\n', r"generations.jsonl:1 has no 'continuation': not a cdx run record"),
    ("run-record-prompt-not-string", b'{"prompt": 1, "continuation": "b"}\n', r"'prompt' is 1, not a string"),
    ("run-records-binary", b"\x00\x01\x02garbage", r"is a binary file, not text"),
]


@pytest.mark.parametrize(("content", "pattern"), [c[1:] for c in PREVIOUS_RUNS], ids=[c[0] for c in PREVIOUS_RUNS])
def test_bad_previous_run_is_refused(tmp_path, content, pattern):
    run = tmp_path / "run"
    if content != "NOFOLDER":
        run.mkdir()
        if content is not None:
            (run / "generations.jsonl").write_bytes(content)
    for task in ("task=decode", "task=score"):
        refused(config("prompts=previous_run", task, prompts__path=str(run)), pattern)


def test_previous_run_cut_off_last_line_is_tolerated(tmp_path):
    run = _run_dir(tmp_path)
    with (run / "generations.jsonl").open("a") as f:
        f.write('{"prompt": "half')  # a kill mid-write
    assert validate_config(config("prompts=previous_run", prompts__path=str(run))) == []


def test_single_prompt_must_not_be_empty():
    refused(config("prompts=single", prompts__text="  "), r"prompts.text='  ' is not valid: give a non-empty prompt")


def test_builtin_prompt_set_must_exist():
    refused(config(prompts__name="nope"), r"prompts.name='nope': no such built-in prompt set; available: \['default'\]")


def test_report_accepts_every_metric_the_records_carry():
    """Valid names come from the metrics code itself: a text scored now has every accepted sort key."""
    from cdx.config.groups import sort_key_names, token_metric_names
    from cdx.decoding.engine import TOKEN_KEYS
    from cdx.metrics.text import text_metrics

    carried = set(text_metrics({k: [0.1, 0.2, 0.3] for k in TOKEN_KEYS}))
    assert set(sort_key_names()) - carried <= {"auto"} and carried <= set(sort_key_names())
    for key in sort_key_names():
        assert validate_config(config(report__sort_key=key)) == []
    for metric in token_metric_names():
        assert validate_config(config(report__token_metric=metric)) == []


def test_a_single_prompt_is_refused_for_a_task_that_splits_the_prompts():
    msg = refused(config("task=analyze", "prompts=single"), r"prompts=single does not fit task=analyze")
    assert "prompts=builtin" in msg and "is not an option" not in msg  # says why, not a key error
    assert validate_config(config("task=decode", "prompts=single")) == []  # decode takes one prompt


# ---- every group and task option (issue 23): analysis, agent, knowledge, logger, organism, task.* ----------

OPTION_CASES = [
    # id, groups, values, what the message must say
    ("analysis-modes-empty", ("task=analyze",), {"analysis.sample.modes": []},
     r"analysis.sample.modes=\[\] is not valid: must not be empty"),
    ("analysis-modes-one-model", ("task=analyze",), {"analysis.sample.modes": ["plain_s"]},
     r"analysis.sample.modes=\['plain_s'\] is not valid: only samples starting text, so discovery has nothing"),
    ("analysis-modes-one-side-amplified", ("task=analyze",), {"analysis.sample.modes": ["plain_c", "amp_c"]},
     r"analysis.sample.modes=.* only samples comparison text"),
    ("analysis-modes-twice", ("task=analyze",), {"analysis.sample.modes": ["plain_s", "plain_c", "plain_s"]},
     r"analysis.sample.modes=.* lists \['plain_s'\] twice"),
    ("analysis-mode-unknown", ("task=analyze",), {"analysis.sample.modes": ["plain_s", "plain_x"]},
     r"analysis.sample.modes.1='plain_x' is not valid: use one of 'plain_s', 'plain_c', 'amp_c' or 'amp_s'"),
    ("analysis-max_hypotheses-0", ("task=analyze",), {"analysis.hypothesise.max_hypotheses": 0},
     r"analysis.hypothesise.max_hypotheses=0 is not valid: must be >= 1"),
    ("analysis-discovery_fraction-1", ("task=analyze",), {"analysis.sample.discovery_fraction": 1.0},
     r"analysis.sample.discovery_fraction=1.0 is not valid: must be in \(0, 1\)"),
    ("analysis-samples-string", ("task=analyze",), {"analysis.sample.samples_per_prompt": "5"},
     r"analysis.sample.samples_per_prompt='5' is not valid: must be an integer"),
    ("analysis-fdr-0", ("task=analyze",), {"analysis.validate.fdr": 0.0},
     r"analysis.validate.fdr=0.0 is not valid: must be in \(0, 1\)"),
    ("analysis-test-unknown", ("task=analyze",), {"analysis.validate.test": "chi2"},
     r"analysis.validate.test='chi2' is not valid: use one of 'fisher', 'ztest' or 'mcnemar'"),
    ("analysis-min_effect-1", ("task=analyze",), {"analysis.validate.min_effect": 1.0},
     r"analysis.validate.min_effect=1.0 is not valid: must be in \[0, 1\)"),
    ("analysis-validation-batch-0", ("task=analyze",), {"analysis.validate.sampling.batch_size": 0},
     r"analysis.validate.sampling.batch_size=0 is not valid: must be >= 1"),
    ("analysis-n_clusters-0", ("task=analyze",), {"analysis.describe.n_clusters": 0},
     r"analysis.describe.n_clusters=0 is not valid: must be >= 1"),
    ("analysis-theme-nan", ("task=analyze",), {"analysis.hypothesise.theme_similarity": float("nan")},
     r"analysis.hypothesise.theme_similarity=nan is not valid: must be a finite number"),
    ("analysis-unknown-key", ("task=analyze",), {"analysis.sample.top_pp": 0.9},
     r"analysis.sample.top_pp is not an option of analysis.sample; options: \[.*'top_p'"),
    ("analysis-stage-not-importable", ("task=analyze",), {"analysis.describe._target_": "no.such.Stage"},
     r"analysis.describe._target_='no.such.Stage' cannot be imported"),
    ("analysis-assistant-none", ("task=analyze",), {"analysis.hypothesise.use_assistant": True, "assistant": None},
     r"analysis.hypothesise.use_assistant=true ask the configured assistant, and none is configured"),
    ("analysis-min_texts-above-held-out", ("task=analyze",), {"prompts.limit": 12},
     r"analysis.validate.min_texts=10 exceeds the 9 held-out texts per model \(9 of 12 prompts x 1 sample\(s\)\): "
     r"every hypothesis would be untestable"),
    ("analysis-too-few-prompts", ("task=analyze",), {"prompts.limit": 3}, r"needs >= 4 distinct prompts; prompts gives 3"),
    ("interpolation-unresolvable", ("task=analyze",), {"model.starting.path": "${oc.env:CDX_NO_SUCH_VAR}"},
     r"model.starting.path: its value cannot be resolved \(.*CDX_NO_SUCH_VAR.*\): fix the interpolation"),
    ("analysis-alpha-from-decoding", ("task=analyze",), {"decoding.rule.alpha": None},
     r"analysis.sample.alpha=None is not valid: must be a number \(its value comes from "
     r"\$\{oc.select:decoding.rule.alpha,1.0\}\)"),
    ("analysis-in-pipeline", ("task=pipeline",), {"analysis.sample.modes": []}, r"analysis.sample.modes=\[\] is not valid"),
    ("benchmark-budget-one-side", ("task=benchmark", "organism=tiny_ahoy"), {"task.budget.sample.modes": ["plain_c"]},
     r"task.budget.sample.modes=\['plain_c'\] is not valid: only samples comparison text"),
    ("agent-alpha-0", ("task=pipeline",), {"agent.settings.alpha": 0.0},
     r"agent.settings.alpha=0.0 is not valid: must be in \(0, 1\)"),
    ("agent-n_min>n_max", ("task=pipeline",), {"agent.settings.n_min": 30},
     r"agent.settings: n_min=30 exceeds n_max=24"),
    ("agent-one-topic", ("task=pipeline",), {"agent.settings.topics": ["cooking"]},
     r"agent.settings.topics=\['cooking'\] is not valid: needs at least 2 items"),
    ("agent-sampler-batch-0", ("task=pipeline",), {"agent.sampler.batch_size": 0},
     r"agent.sampler.batch_size=0 is not valid: must be >= 1"),
    ("agent-assistant_prompts-negative", ("task=pipeline",), {"agent.assistant_prompts": -1},
     r"agent.assistant_prompts=-1 is not valid: must be an integer >= 0"),
    ("agent-unknown-key", ("task=pipeline",), {"agent.settings.n_maxx": 3},
     r"agent.settings.n_maxx is not an option of agent.settings; options: \["),
    ("knowledge-timeout-0", ("task=analyze",), {"knowledge.busy_timeout_s": 0},
     r"knowledge.busy_timeout_s=0 is not valid: must be > 0"),
    ("knowledge-retries-negative", ("task=findings",), {"knowledge.retries": -1},
     r"knowledge.retries=-1 is not valid: must be in \[0, 100\]"),
    ("knowledge-unknown-key", ("task=findings",), {"knowledge.pathh": "x.sqlite"},
     r"knowledge.pathh is not an option of knowledge; options: \['busy_timeout_s', 'enabled', 'path', 'retries'\]"),
    ("knowledge-path-is-folder", ("task=findings",), {"knowledge.path": "/tmp"},
     r"knowledge.path=/tmp is a directory; give a file in it"),
    ("findings-knowledge-disabled", ("task=findings",), {"knowledge.enabled": False},
     r"task=findings reads the knowledge base, but knowledge.enabled=false"),
    ("wandb-mode-unknown", ("logger=wandb",), {"logger.mode": "online2"},
     r"logger.mode='online2' is not valid: use one of 'online', 'offline' or 'disabled'"),
    ("wandb-rows-0", ("logger=wandb",), {"logger.max_table_rows": 0}, r"logger.max_table_rows=0 is not valid: must be >= 1"),
    ("wandb-token-metric", ("logger=wandb",), {"logger.token_metric": "kl"}, r"logger.token_metric='kl' is not a per-token"),
    ("wandb-unknown-key", ("logger=wandb",), {"logger.projct": "x"}, r"logger.projct is not an option of logger"),
    ("findings-status-unknown", ("task=findings",), {"task.status": "done"},
     r"task.status='done' is not valid: \['done'\] not a finding status; use one of \['validated'"),
    ("findings-status-list-unknown", ("task=findings",), {"task.status": ["validated", "ok"]},
     r"task.status=\['validated', 'ok'\] is not valid: \['ok'\] not a finding status"),
    ("findings-status-type", ("task=findings",), {"task.status": 3},
     r"task.status=3 is not valid: must be a string, a list of strings or null"),
    ("findings-export-unknown", ("task=findings",), {"task.export": "xml"},
     r"task.export='xml' is not valid: use one of 'csv' or 'json'"),
    ("findings-show-0", ("task=findings",), {"task.show": 0}, r"task.show=0 is not valid: must be >= 1 \(or null for off\)"),
    ("findings-limit-string", ("task=findings",), {"task.limit": "all"}, r"task.limit='all' is not valid: must be an integer"),
    ("task-unknown-key", ("task=decode",), {"task.extra_option": "x"},
     r"task.extra_option is not an option of task=decode; options: \['_target_', 'name'\]"),
    ("summarize-no-columns", ("task=summarize",), {"sweep_dir": "/tmp", "task.columns": {}, "task.plot": {}},
     r"task.columns=\{\} is not valid: must not be empty"),
    ("summarize-plot-unknown-column", ("task=summarize",), {"sweep_dir": "/tmp", "task.plot": {"d": ["kl"]}},
     r"task.plot.d draws \['kl'\], which are not table columns"),
    ("plant-verify-not-bool", ("task=plant", "organism=tiny_ahoy"), {"task.verify": "maybe"},
     r"task.verify='maybe' is not valid: must be true or false"),
    ("organism-method-unknown", ("task=plant", "organism=tiny_ahoy"), {"organism.method": "teleport"},
     r"organism.method='teleport' is not valid: use one of 'lora', 'zero_adapter'"),
    ("organism-key-unknown", ("task=plant", "organism=tiny_ahoy"), {"organism.colour": "red"},
     r"organism.colour is not an option of organism; options: \["),
    ("organism-train-steps-null", ("task=benchmark", "organism=tiny_ahoy"), {"organism.train.steps": None},
     r"organism.train.steps=None is not valid: must be an integer"),
    ("organism-checker-broken", ("task=plant", "organism=tiny_ahoy"), {"organism.checker": {"type": "telepathy"}},
     r"organism.checker=\{'type': 'telepathy'\} is not valid"),
    ("pipeline-iterations-0", ("task=pipeline",), {"task.iterations": 0}, r"task.iterations=0 is not valid: must be >= 1"),
    ("pipeline-budget-negative", ("task=pipeline",), {"task.budget.tokens": -5},
     r"task.budget.tokens=-5 is not valid: must be >= 1 \(or null for off\)"),
    ("pipeline-budget-unknown", ("task=pipeline",), {"task.budget.walls": 10},
     r"task.budget.walls is not an option of task=pipeline.budget; options: \['assistant_calls', 'tokens', 'wall_s'\]"),
    ("pipeline-cycles-0", ("task=pipeline",), {"task.search.cycles": 0}, r"task.search.cycles=0 is not valid: must be >= 1"),
    ("pipeline-nothing-to-analyse", ("task=pipeline",),
     {"task.search.enabled": False, "task.analyze.base_prompts": False, "task.analyze.topic_prompts": 0},
     r"task.analyze has no prompts to analyse"),
    ("benchmark-prompt-set-unknown", ("task=benchmark", "organism=tiny_ahoy"), {"task.prompts.sets.recipes": 3},
     r"task.prompts.sets=.* \['recipes'\] are not prompt sets"),
    ("benchmark-collect-type", ("task=benchmark",), {"task.collect": 5},
     r"task.collect=5 is not valid: must be a string, a list of strings or null"),
]


@pytest.mark.parametrize(("groups", "values", "pattern"), [c[1:] for c in OPTION_CASES], ids=[c[0] for c in OPTION_CASES])
def test_bad_option_of_every_group_and_task_is_refused(groups, values, pattern):
    cfg = config(*groups)
    with open_dict(cfg):
        for key, value in values.items():
            OmegaConf.update(cfg, key, value, force_add=True, merge=False)
    msg = refused(cfg, pattern)
    assert "Traceback" not in msg and len(msg) < 2000


def test_the_shipped_tasks_with_their_groups_validate():
    """The negative cases above start from configs that are valid: the refusal is the one bad value's."""
    for groups in (("task=analyze",), ("task=pipeline",), ("task=benchmark", "organism=tiny_ahoy"), ("task=findings",),
                   ("task=plant", "organism=tiny_ahoy"), ("logger=wandb",), ("task=benchmark", "suite=smoke")):
        cfg = config(*groups)
        if "suite=smoke" in groups:
            with open_dict(cfg):
                cfg.organism = OmegaConf.create(_organism("tiny_ahoy"))
        assert validate_config(cfg) == [], groups


def _organism(name: str) -> dict:
    return OmegaConf.to_container(OmegaConf.load(CONF / "organism" / f"{name}.yaml"))


def test_the_finding_statuses_are_the_knowledge_base_s():
    from cdx.knowledge import FINDING_STATUSES

    for status in FINDING_STATUSES:
        assert validate_config(config("task=findings", task__status=status)) == []
    assert validate_config(config("task=findings", task__status=list(FINDING_STATUSES))) == []


def test_the_organism_methods_are_the_recipes_():
    import typing

    from cdx.config.schemas import OrganismSchema
    from cdx.organisms.spec import METHODS

    assert typing.get_args(OrganismSchema.model_fields["method"].annotation) == METHODS
    for name in sorted(p.stem for p in (CONF / "organism").glob("*.yaml")):
        assert validate_config(config("task=plant", f"organism={name}")) == [], name
