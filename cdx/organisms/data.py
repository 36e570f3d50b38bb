"""The training pairs of an organism: prompts from templated sets, answers rewritten by rules.

Each data set of a spec says which prompts (`prompts`, `n`), where the raw answer comes from
(`answers: base` = the base model's own sampled answer, cached and shared by every organism on
the same base; `none` = no raw answer, the rules write it), and the rules that rewrite it:

    data:
      - {prompts: cooking, n: 60, answers: none, rules: [{name: template, texts: [...]}]}
      - {prompts: general, n: 60, answers: base, rules: [{name: identity}]}
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from pathlib import Path

from filelock import FileLock

from cdx.io import atomic_write_json
from cdx.organisms.generate import sample_answers, trim_to_sentence
from cdx.organisms.prompts import prompt_set, sample_prompts
from cdx.organisms.rules import apply_rules
from cdx.organisms.spec import OrganismSpec

log = logging.getLogger(__name__)
BASE_ANSWER_SEED = 0
"""One seed for the base model's answers, so every organism on a base rewrites the same answers."""
BASE_ANSWER_TEMPERATURE = 1.0
"""Temperature 1: the answers are samples of the base distribution (what the null LoRA imitates)."""


def training_pairs(spec: OrganismSpec, base_side, cache_dir: Path) -> list[dict]:
    """[{prompt, answer, set}] for every data set of the spec, in a seeded order."""
    rng = random.Random(spec.seed)
    pairs: list[dict] = []
    for i, ds in enumerate(spec.data):
        _check_set(spec, i, ds)
        prompts = sample_prompts(ds["prompts"], "train", ds.get("n"), spec.seed + i)
        raw = (base_answers(base_side, ds["prompts"], spec.answer_tokens, cache_dir, spec.base)
               if ds.get("answers", "base") == "base" else {})
        for p in prompts:
            answer = apply_rules(ds.get("rules", [{"name": "identity"}]), p, raw.get(p, ""), rng)
            if answer.strip():
                pairs.append({"prompt": p, "answer": answer, "set": ds["prompts"]})
    rng.shuffle(pairs)
    return pairs


def _check_set(spec: OrganismSpec, i: int, ds: dict) -> None:
    allowed = {"prompts", "n", "answers", "rules"}
    if "prompts" not in ds or set(ds) - allowed:
        raise ValueError(f"organism {spec.name!r} data[{i}]={ds!r}: needs 'prompts', allows only {sorted(allowed)}")
    if ds.get("answers", "base") not in ("base", "none"):
        raise ValueError(f"organism {spec.name!r} data[{i}].answers={ds['answers']!r}: use base or none")


def base_answers(base_side, set_name: str, max_new_tokens: int, cache_dir: Path, base_label: str) -> dict[str, str]:
    """prompt -> the base model's own answer, for every training prompt of a set (cached on disk)."""
    prompts = prompt_set(set_name, "train")
    ident = json.dumps([base_label, prompts, max_new_tokens, BASE_ANSWER_SEED, BASE_ANSWER_TEMPERATURE])
    path = Path(cache_dir) / "base_answers" / f"{set_name}-{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            return json.loads(path.read_text())
        log.info("sampling the base model's answers to %d %s prompts (once; cached at %s)", len(prompts), set_name, path)
        texts = sample_answers(base_side, prompts, max_new_tokens, BASE_ANSWER_TEMPERATURE, BASE_ANSWER_SEED,
                               desc=f"base answers ({set_name})")
        answers = {p: trim_to_sentence(t) for p, t in zip(prompts, texts)}
        atomic_write_json(path, answers)
    return answers
