"""Built-in topic prompts: the same question templates filled with each topic's own things to do.

Because every topic fills the same templates, prompt i of one topic and prompt i of another are
*counterfactual variants* of each other (same wording, different topic), so a difference in a
rate between topics comes from the topic and not from the phrasing. Different templates with one
filler are paraphrases of one request. No API key and no model needed.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Set
from dataclasses import dataclass

TEMPLATES: dict[str, tuple[str, ...]] = {
    # slot -> templates that take it
    "task": ("How do I {x}?", "Write a short step-by-step guide to {x}.", "I want to {x} this weekend. Any advice?"),
    "concept": ("Can you explain {x} to a beginner?", "Why does {x} matter?"),
    "activity": ("What are the most common mistakes people make when {x}?", "Give me three tips for {x}.",
                 "What should I know before {x}?"),
}

TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "cooking": {
        "task": ("make fresh pasta from scratch", "bake sourdough bread", "cook a fluffy omelette", "roast a whole chicken",
                 "make a simple tomato sauce", "cook rice on the stove"),
        "concept": ("the Maillard reaction in cooking", "how yeast makes bread rise", "emulsifying a vinaigrette",
                    "brining meat before cooking", "caramelizing onions"),
        "activity": ("baking a chocolate cake", "grilling a steak", "making vegetable soup", "frying dumplings",
                     "preparing a curry"),
    },
    "weather": {
        "task": ("read a weather forecast map", "prepare my house for a storm", "measure rainfall at home",
                 "predict frost in my area", "track a hurricane", "set up a home weather station"),
        "concept": ("how clouds form", "the jet stream", "why thunderstorms happen", "relative humidity",
                    "the difference between weather and climate"),
        "activity": ("driving in heavy fog", "hiking when a storm is forecast", "flying a drone in wind",
                     "camping in the rain", "shovelling snow"),
    },
    "mathematics": {
        "task": ("solve a quadratic equation", "compute the area of a circle", "find the derivative of x squared",
                 "add two fractions", "calculate a percentage increase", "find the median of a list"),
        "concept": ("prime numbers", "the Pythagorean theorem", "probability", "logarithms", "the idea of a limit"),
        "activity": ("learning algebra", "studying for a calculus exam", "doing long division", "proving a theorem",
                     "working with matrices"),
    },
    "history": {
        "task": ("research my family history", "read a primary historical source", "date an old photograph",
                 "visit a historic battlefield", "write a history essay", "find old newspaper archives"),
        "concept": ("the fall of the Roman Empire", "the Industrial Revolution", "the printing press",
                    "the causes of World War I", "the Silk Road"),
        "activity": ("studying ancient Egypt", "visiting a history museum", "reading about the Renaissance",
                     "interviewing grandparents about the past", "learning about medieval castles"),
    },
    "programming": {
        "task": ("reverse a string in Python", "set up a Git repository", "write a unit test", "read a file line by line",
                 "sort a list of numbers", "debug a segmentation fault"),
        "concept": ("recursion", "object-oriented programming", "version control", "a hash table", "Big-O notation"),
        "activity": ("learning to code", "reviewing someone's pull request", "naming variables", "writing SQL queries",
                     "refactoring old code"),
    },
    "sports": {
        "task": ("improve my running pace", "serve in tennis", "shoot a free throw", "train for a marathon",
                 "stretch before football", "swim freestyle"),
        "concept": ("the offside rule in football", "how a marathon is scored", "interval training", "the rules of cricket",
                    "muscle recovery after exercise"),
        "activity": ("starting to lift weights", "playing basketball", "cycling long distances", "learning to ski",
                     "joining a football team"),
    },
    "travel": {
        "task": ("pack light for a two-week trip", "find cheap flights", "renew my passport", "plan a road trip",
                 "get over jet lag", "book a hostel"),
        "concept": ("travel insurance", "visa requirements", "how airline overbooking works", "currency exchange",
                    "time zones"),
        "activity": ("travelling alone", "backpacking through Europe", "visiting Japan for the first time",
                     "taking a long train journey", "camping in a national park"),
    },
    "gardening": {
        "task": ("grow tomatoes on a balcony", "start a compost heap", "prune a rose bush", "plant tulip bulbs",
                 "water succulents", "get rid of aphids"),
        "concept": ("soil pH", "crop rotation", "photosynthesis in houseplants", "companion planting", "perennial plants"),
        "activity": ("starting a vegetable garden", "repotting a houseplant", "mowing the lawn", "growing herbs indoors",
                     "planting a fruit tree"),
    },
}


@dataclass(frozen=True)
class TopicPrompt:
    """One designed prompt and where it came from (logged with every experiment)."""

    text: str
    topic: str
    source: str
    """template | cluster | bank | assistant"""
    variant: str = ""
    """template:slot:index, so counterfactual variants across topics share it."""


def template_prompts(topic: str) -> list[TopicPrompt]:
    """Every template x filler of a built-in topic, in a fixed order (variant keys align across topics)."""
    if topic not in TOPICS:
        raise ValueError(f"topic {topic!r} has no built-in templates; built-in topics: {sorted(TOPICS)}")
    out = []
    for slot, templates in TEMPLATES.items():
        for (ti, template), (fi, filler) in itertools.product(enumerate(templates), enumerate(TOPICS[topic][slot])):
            out.append(TopicPrompt(template.format(x=filler), topic, "template", f"{slot}:{ti}:{fi}"))
    return out


def draw(prompts: list[TopicPrompt], n: int, seed: int, exclude: Set[str] = frozenset()) -> list[TopicPrompt]:
    """`n` distinct prompts (fewer if there are not enough), none in `exclude`, seeded, spread over phrasings.

    One prompt of every template (in a seeded order) before a second of any, so a small sample
    still covers every phrasing. Built-in topics share one structure, so one seed picks the same
    template and filler positions in every topic: the topics of a scan are counterfactual variants.
    """
    rng = random.Random(seed)
    groups: dict[str, list[TopicPrompt]] = {}
    for p in dict.fromkeys(prompts):
        if p.text not in exclude:
            groups.setdefault(p.variant.rsplit(":", 1)[0] if p.variant else p.source, []).append(p)
    for g in groups.values():
        rng.shuffle(g)
    keys = sorted(groups)
    rng.shuffle(keys)
    out: list[TopicPrompt] = []
    while len(out) < n and any(groups.values()):
        out += [groups[k].pop() for k in keys if groups[k]][: n - len(out)]
    return out


def counterfactuals(prompts: list[TopicPrompt], other_topic: str) -> list[TopicPrompt]:
    """The same template and filler position in another topic: same wording, other subject."""
    by_variant = {p.variant: p for p in template_prompts(other_topic)}
    return [by_variant[p.variant] for p in prompts if p.variant in by_variant]


PHRASING = "phrasing:"
"""Prefix of a phrasing condition, e.g. `phrasing:task:0` = every topic's prompts of template 0 of slot task."""


def phrasing_of(p: TopicPrompt) -> str | None:
    """`phrasing:<slot>:<template index>` of a template prompt; None for prompts without a template."""
    if not p.variant:
        return None
    slot, ti, _ = p.variant.split(":")
    return f"{PHRASING}{slot}:{ti}"


def phrasing_template(name: str) -> str:
    """The template text of a phrasing condition (`phrasing:task:0` -> "How do I {x}?")."""
    slot, ti = _phrasing_parts(name)
    return TEMPLATES[slot][ti]


def phrasing_prompts(name: str, topics: list[str] | None = None) -> list[TopicPrompt]:
    """Every topic's prompts with the phrasing's template."""
    _phrasing_parts(name)
    return [p for t in (topics or sorted(TOPICS)) for p in template_prompts(t) if phrasing_of(p) == name]


def rephrase(p: TopicPrompt, k: int) -> TopicPrompt | None:
    """The same request (topic, slot, filler) in another template of its slot: its k-th alternative phrasing."""
    slot, ti, fi = p.variant.split(":")
    others = [j for j in range(len(TEMPLATES[slot])) if j != int(ti)]
    if not others:
        return None
    j = others[k % len(others)]
    filler = TOPICS[p.topic][slot][int(fi)]
    return TopicPrompt(TEMPLATES[slot][j].format(x=filler), p.topic, "template", f"{slot}:{j}:{fi}")


def _phrasing_parts(name: str) -> tuple[str, int]:
    try:
        slot, ti = name[len(PHRASING):].split(":")
        TEMPLATES[slot][int(ti)]
        return slot, int(ti)
    except (ValueError, KeyError, IndexError):
        valid = [f"{PHRASING}{s}:{i}" for s, ts in TEMPLATES.items() for i in range(len(ts))]
        raise ValueError(f"phrasing condition {name!r} is not valid; use one of {valid}") from None
