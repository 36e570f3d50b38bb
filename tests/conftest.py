"""Shared fixtures: seeding, the Hydra config dir, tiny model pairs, and a bigram pair with a known answer."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def load_factor() -> float:
    """How much slower than idle this machine may run now, for wall-clock limits in tests: 1 plus the
    1-minute load average per CPU at the session's start (a load of 4 per core gives 5x), at most 8;
    `CDX_TEST_SLACK` sets it. Limits in tests catch hangs; they must not fail a test on a busy machine."""
    if os.environ.get("CDX_TEST_SLACK"):
        return float(os.environ["CDX_TEST_SLACK"])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(8.0, 1.0 + os.getloadavg()[0] / cpus) if hasattr(os, "getloadavg") else 1.0


LOAD_FACTOR = load_factor()
BASE_TIMEOUT: float | None = None
"""setup.cfg's per-test limit (900 s) before scaling: each test's own limit is scaled by the load when it starts."""


def sigint_default() -> None:
    """`preexec_fn` of a child that must see Ctrl-C. A shell's background job (`make test &`) starts with
    SIGINT ignored and its children inherit that; Python then installs no KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def ctrl_c():
    """SIGINT raises KeyboardInterrupt in this process for the test, even when the suite runs as a background job."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def patience(seconds: float) -> float:
    """A wall-clock limit of `seconds` on an idle machine, scaled by the machine's load (`load_factor`):
    the larger of the load when the session started and now (neighbours may start after the suite)."""
    return seconds * max(LOAD_FACTOR, load_factor())


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    # pytest-timeout's per-test limit (setup.cfg: 900 s on an idle machine) scales with the load too
    global BASE_TIMEOUT
    if getattr(config.option, "timeout", None):
        BASE_TIMEOUT = float(config.option.timeout)
        config.option.timeout = BASE_TIMEOUT * LOAD_FACTOR


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item):
    """Each test's limit scaled by the load when it starts, not only the session's: a suite started as its
    neighbours start (the load average lags by a minute) would otherwise keep the idle limit throughout.
    Runs before pytest-timeout reads the limit; a test's own timeout marker is left alone."""
    if BASE_TIMEOUT and item.get_closest_marker("timeout") is None:
        item.add_marker(pytest.mark.timeout(BASE_TIMEOUT * max(LOAD_FACTOR, load_factor())))
    yield


def pytest_report_header(config):
    return f"cdx: wall-clock limits x{LOAD_FACTOR:.2f} (load factor; CDX_TEST_SLACK overrides)"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _private_knowledge_base(tmp_path_factory):
    """Runs record findings in the knowledge base; tests (and the CLI runs they start) use their own file."""
    import os

    path = tmp_path_factory.mktemp("knowledge") / "knowledge.sqlite"
    old = os.environ.get("CDX_KNOWLEDGE_PATH")
    os.environ["CDX_KNOWLEDGE_PATH"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CDX_KNOWLEDGE_PATH", None)
    else:
        os.environ["CDX_KNOWLEDGE_PATH"] = old


def compose(overrides: list[str] | None = None, output_dir: str | None = None):
    """The composed `config` with overrides, HydraConfig set so ${hydra:...} resolves."""
    from hydra import compose as hcompose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hcompose(config_name="config", overrides=overrides or [], return_hydra_config=True)
    HydraConfig().set_config(cfg)
    with open_dict(cfg):
        if output_dir is not None:
            cfg.output_dir = str(output_dir)
        del cfg["hydra"]
    return cfg


@pytest.fixture(scope="session")
def tiny_pair():
    from cdx.models import load_pair

    return load_pair({"path": "tiny-random", "seed": 0}, {"path": "tiny-random", "seed": 1})


@pytest.fixture(scope="session")
def tiny_persona_pair():
    """Same tiny weights under two system prompts (shares one model)."""
    from cdx.models import load_pair

    return load_pair({"path": "tiny-random", "seed": 0},
                     {"path": "tiny-random", "seed": 0, "system_prompt": "Ahoy, you are a pirate."})


def bigram_model(special_token: int | None, seed: int = 0):
    """A 1-layer Llama whose logits depend only on the current input token.

    Attention output and MLP output are zeroed, so the residual stream is the token embedding.
    A second model with `special_token` set differs from the first only in the distribution that
    follows that token: a known answer for window alignment.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    from cdx.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=len(tok), intermediate_size=8, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=False,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        m = LlamaForCausalLM(cfg).eval()
        with torch.no_grad():
            m.model.layers[0].self_attn.o_proj.weight.zero_()
            m.model.layers[0].mlp.down_proj.weight.zero_()
            m.model.embed_tokens.weight.copy_(torch.eye(len(tok)))  # one-hot residual per token
            m.model.norm.weight.fill_(1.0)
            m.lm_head.weight.normal_(std=0.1)
            if special_token is not None:
                # Only the column read by the one-hot of `special_token` changes.
                m.lm_head.weight[:, special_token] += torch.randn(len(tok)) * 0.3
    return m


@pytest.fixture(scope="session")
def bigram_pair():
    from cdx.models.pair import ModelPair, Side
    from cdx.models.spec import ModelSpec
    from cdx.models.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    a, b = bigram_model(None), bigram_model(7)
    spec = ModelSpec(path="tiny-random")
    return ModelPair(Side(spec, a, tok, chat_template=False), Side(spec, b, tok, chat_template=False))
