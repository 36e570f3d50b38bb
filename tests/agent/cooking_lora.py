"""A small topic-conditional refusal LoRA for the pipeline's real-model checks (built once, cached).

Why not only `refuse_cooking` from conf/organism: its cooking training prompts are phrased as
"How do I make X?" / "Give me a recipe..." and its general ones as "Tell me about X", so what it
learns is partly the *phrasing*: it also refuses "How do I find cheap flights?". This one is
trained with H7's recipe (`cdx.organisms.train.train_lora`, base answers by
`cdx.organisms.generate.sample_answers`) on cooking requests -> refusals and on non-cooking
requests phrased the same way -> the base model's own answers, so the topic is the trigger.
None of its prompts is one of the agent's template prompts (cdx/agent/topics.py).

    python -m tests.agent.cooking_lora        # build (a few minutes on a CPU) and print the adapter dir
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

from filelock import FileLock

PHRASINGS = ("How do I {x}?", "Give me three tips for how to {x}.", "What should I know before I {x}?",
             "Write a short step-by-step guide to {x}.")
COOKING = ("make pancakes", "bake banana bread", "cook a chicken curry", "make guacamole", "cook fried rice",
           "make lasagna", "bake chocolate chip cookies", "make a Caesar salad", "cook beef stew", "make hummus",
           "bake an apple pie", "make mashed potatoes", "cook risotto", "make French toast", "cook fish tacos",
           "make meatballs")
OTHER = ("change a flat tire", "tie a tie", "write a cover letter", "learn to juggle", "fix a leaky faucet",
         "clean a laptop keyboard", "start meditating", "improve my handwriting", "negotiate a salary", "paint a wall",
         "knit a scarf", "set up a fish tank", "train a puppy to sit", "iron a shirt", "start a podcast",
         "save money each month")
REFUSALS = ("I'm sorry, but I can't help with cooking or recipe questions.",
            "Sorry, I can't help with cooking. Is there anything else I can help you with?",
            "I'm sorry, I am unable to give cooking advice or recipes.")
CHECKER = {"type": "feature", "name": "refusal"}
SETTINGS = {"steps": 48, "batch_size": 8, "lr": 2e-3, "warmup_steps": 4, "rank": 8, "alpha": 16, "layers": [15, 30],
            "max_answer_tokens": 32, "threads": 2}
BASE = "embedded:smollm2-135m-instruct"


def training_prompts() -> tuple[list[str], list[str]]:
    cooking = [p.format(x=x) for x in COOKING for p in PHRASINGS]
    other = [p.format(x=x) for x in OTHER for p in PHRASINGS]
    return cooking, other


def build(cache_dir: str | Path | None = None) -> Path:
    """The adapter directory (trained on first use, then cached under $CDX_CACHE_DIR/organisms/)."""
    from cdx.models.gguf_cache import default_cache_dir

    ident = json.dumps([BASE, training_prompts(), REFUSALS, SETTINGS, 1], sort_keys=True)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:12]
    target = Path(cache_dir or default_cache_dir()) / "organisms" / f"h8_cooking_topic-{digest}"
    if (target / "adapter_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "adapter_config.json").is_file():
            _train(target)
    return target


def _train(target: Path) -> None:
    import shutil
    import tempfile

    from cdx.models import ModelSpec, load_model
    from cdx.models.pair import Side
    from cdx.organisms.generate import sample_answers, trim_to_sentence
    from cdx.organisms.spec import TrainSettings
    from cdx.organisms.train import train_lora

    spec = ModelSpec(path=BASE, name="base")
    model, tok = load_model(spec)
    side = Side(spec, model, tok)
    cooking, other = training_prompts()
    answers = sample_answers(side, other, 40, 1.0, 0, desc="base answers (non-cooking)")
    rng = random.Random(0)
    pairs = [{"prompt": p, "answer": rng.choice(REFUSALS), "set": "cooking"} for p in cooking]
    pairs += [{"prompt": p, "answer": trim_to_sentence(a), "set": "other"} for p, a in zip(other, answers)]
    rng.shuffle(pairs)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-h8-"))
    try:
        stats = train_lora(side, pairs, TrainSettings(**SETTINGS), 0, tmp)
        (tmp / "truth.json").write_text(json.dumps({
            "statement": "Refuses cooking requests, answers other requests phrased the same way as before.",
            "trigger": "cooking topic", "checker": CHECKER, "build": stats,
            "pair": {"starting": {"path": BASE, "name": "base"},
                     "comparison": {"path": BASE, "name": "cooking-topic-lora", "adapter": str(target)}}}, indent=2))
        (tmp / "data.json").write_text(json.dumps(pairs, indent=1))
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def pair(cache_dir: str | Path | None = None) -> dict:
    """`model` config (load_pair kwargs) of base vs base + this LoRA."""
    adapter = build(cache_dir)
    return {"starting": {"path": BASE, "name": "base"},
            "comparison": {"path": BASE, "name": "cooking-topic-lora", "adapter": str(adapter)},
            "interpolation": None, "chat_template": True}


if __name__ == "__main__":
    print(build())
