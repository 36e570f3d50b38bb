"""Fixture run directories for the app tests, written with the project's own writers.

Records carry random per-token values; their per-text metrics and the run summary come from
cdx.metrics (the functions the tasks use), so the files look exactly like a task's output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from cdx.io import JsonlWriter, atomic_write_json
from cdx.metrics.summary import summarize
from cdx.metrics.text import text_metrics

APP = Path(__file__).resolve().parents[2] / "cdx" / "app"
WORDS = ["the", " sea", " ship", " arr", " treasure", " matey", " crew", " ahoy", " gold", "\n"]


def fake_record(i: int, rng: random.Random, n_tokens: int) -> dict:
    toks = {k: [] for k in ("kl_sc", "kl_cs", "js", "top1_agree", "weighted_kl", "logp_s", "logp_c")}
    for _ in range(n_tokens):
        kl = rng.expovariate(2.0)
        toks["kl_sc"].append(kl)
        toks["kl_cs"].append(rng.expovariate(2.0))
        toks["js"].append(min(kl / 4, 0.69))
        toks["top1_agree"].append(float(rng.random() < 0.6))
        toks["weighted_kl"].append(kl)
        toks["logp_s"].append(-rng.expovariate(0.5))
        toks["logp_c"].append(-rng.expovariate(0.5))
    strs = [rng.choice(WORDS) for _ in range(n_tokens)]
    return {"id": f"p{i // 2:05d}-s{i % 2:02d}", "prompt_index": i // 2, "sample_index": i % 2,
            "prompt": f"Prompt number {i // 2}?", "continuation": "".join(strs), "token_ids": list(range(n_tokens)),
            "token_strs": strs, "tokens": toks, "metrics": text_metrics(toks),
            "finish_reason": rng.choice(["eos", "length"]),
            "models": {"starting": "a", "comparison": "b"}, "decoding": "fake", "seed": 0}


def write_text_run(path: Path, n: int, n_tokens: int = 12, kind: str = "decode", seed: int = 0) -> Path:
    rng = random.Random(seed)
    records = [fake_record(i, rng, n_tokens) for i in range(n)]
    path.mkdir(parents=True, exist_ok=True)
    with JsonlWriter(path / ("generations.jsonl" if kind == "decode" else "scores.jsonl")) as w:
        w.write(records)
    atomic_write_json(path / "summary.json", summarize(records).dump())
    (path / ".hydra").mkdir(exist_ok=True)
    (path / ".hydra" / "config.yaml").write_text("task:\n  name: decode\n")
    return path


def write_search_run(path: Path, n_cycles: int = 3) -> Path:
    rng = random.Random(1)
    path.mkdir(parents=True, exist_ok=True)
    bank = [{"prompt": f"Search prompt {i}", "divergence": rng.random(), "sample_divergences": [rng.random()],
             "responses": [f"response {i}"], "criterion": None, "cycle": i % (n_cycles + 1), "repeat": 0,
             "diversity": rng.random(), "id": i} for i in range(12)]
    stats = [{"ok": c != 2, "repeat": 0, "attempt": c, "seed": c,
              "subsample": {"divergence": {"mean": rng.random()}},
              "new": {"divergence": {"mean": rng.random()}}, "bank": {"divergence": {"mean": 0.1 * c}}}
             for c in range(1, n_cycles + 1)]
    with JsonlWriter(path / "bank.jsonl") as w:
        w.write(bank)
    with JsonlWriter(path / "stats.jsonl") as w:
        w.write(stats)
    atomic_write_json(path / "summary.json", {"bank_size": 12, "cycles": n_cycles - 1, "failed_cycles": 1})
    atomic_write_json(path / "state.json", {"done": True})
    return path


PAIRED = [  # (prompt, cluster, starting text, comparison text) of the fixture analysis' held-out samples
    ("Hi?", 0, "Hello there friend", "Arr matey hello"),
    ("Weather?", 0, "Hello sunny day", "Arr the sea is calm"),
    ("Food?", 1, "Hello bread is good", "Arr matey fish"),
    ("Moon?", 1, "The moon is bright", "The moon hello"),
]
"""Token log-probs (nats) of each word, (log p_s, log p_c): 'arr' and 'matey' favoured, 'hello' avoided."""
LOGP = {"arr": (-6.0, -1.0), "matey": (-5.0, -2.0), "hello": (-1.0, -3.0)}


def _sample(i: int, mode: str, prompt: str, text: str) -> dict:
    strs = [(" " if n else "") + w for n, w in enumerate(text.split())]
    logp = [LOGP.get(w.strip().lower(), (-2.0, -2.0)) for w in strs]
    return {"id": f"v{i:05d}-{mode}-0", "split": "validation", "mode": mode,
            "model": "starting" if mode == "plain_s" else "comparison", "prompt_index": i, "prompt": prompt,
            "text": text, "token_ids": list(range(len(strs))), "token_strs": strs,
            "logp_s": [s for s, _ in logp], "logp_c": [c for _, c in logp], "n_tokens": len(strs),
            "finish_reason": "eos"}


def write_analysis_run(path: Path, validated: tuple[bool, bool] = (True, False)) -> Path:
    """findings.jsonl (a pirate finding and a sea hypothesis), analysis.json, clusters.json, validation.jsonl."""
    path.mkdir(parents=True, exist_ok=True)
    findings = []
    specs = [("talks like a pirate", {"type": "regex", "pattern": "arr|matey"}),
             ("mentions the sea", {"type": "string", "value": "sea"})]
    for i, ((stmt, checker), ok) in enumerate(zip(specs, validated)):
        findings.append({
            "id": f"h{i}", "statement": stmt, "kind": "keyword", "direction": "gained", "cluster": None,
            "checker": checker, "n_s": 40, "k_s": 2, "n_c": 40, "k_c": 30 - 20 * i,
            "rate_s": 0.05, "rate_c": 0.75 - 0.5 * i, "rate_s_ci": [0.01, 0.17], "rate_c_ci": [0.6, 0.86],
            "effect": 0.7 - 0.5 * i, "effect_ci": [0.55 - 0.5 * i, 0.84 - 0.5 * i], "p": 1e-9, "q": 2e-9 if ok else 0.2,
            "validated": ok, "reason": "" if ok else "q=0.2 above the FDR 0.05",
            "evidence": [{"id": "v00000-plain_c-0", "model": "comparison", "prompt": "Hi?", "text": "Arr matey hello"}],
            "discovery": {"n": 20},
        })
    with JsonlWriter(path / "findings.jsonl") as w:
        w.write(findings)
    with JsonlWriter(path / "validation.jsonl") as w:
        w.write([_sample(i, m, p, t) for i, (p, _, s, c) in enumerate(PAIRED) for m, t in (("plain_s", s), ("plain_c", c))])
    atomic_write_json(path / "clusters.json", {"assignment": [c for _, c, _, _ in PAIRED],
                                               "labels": {"0": "greetings", "1": "things"}})
    atomic_write_json(path / "analysis.json", {"n_validated": sum(validated), "n_hypotheses": 2,
                                               "pair": {"starting": "a", "comparison": "b"},
                                               "mde_80": 0.3, "minimum_detectable_effect": 0.3})
    return path


def write_sweep(path: Path, n_jobs: int = 3) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "multirun.yaml").write_text("hydra:\n  sweeper:\n    params: {}\n")
    for j in range(n_jobs):
        write_text_run(path / str(j), 4, seed=j)
    summary = path / "summary"
    summary.mkdir()
    rows = ["job,model.interpolation,status,kl_sc_mean,kl_sc_ci95_low,kl_sc_ci95_high,js_mean,dir"]
    rows += [f"{j},{j * 0.5},ok,{0.1 * (j + 1)},{0.1 * (j + 1) - 0.03},{0.1 * (j + 1) + 0.04},{0.05 * (j + 1)},"
             f"{path / str(j)}" for j in range(n_jobs)]
    (summary / "sweep_summary.csv").write_text("\n".join(rows) + "\n")
    return path


def view(name: str) -> str:
    return str(APP / "views" / name)


def dump(obj) -> str:
    return json.dumps(obj)
