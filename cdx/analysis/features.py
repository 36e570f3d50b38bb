"""Behavioural features of one text, as booleans: the extensible registry rate tests run on.

Each feature is a pure function `text -> bool`. A feature is a *rate* behaviour ("how often does a
model refuse?"), so the describer compares its frequency between the two models' plain samples and
a feature hypothesis is validated by a rate test. Register new ones with `@feature("name")`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

FEATURES: dict[str, Callable[[str], bool]] = {}
"""name -> predicate; `cdx.analysis.build_checker({"type": "feature", "name": ...})` looks here."""
DESCRIPTIONS: dict[str, str] = {}
"""name -> the behaviour in words, used in templated hypothesis statements."""


def feature(name: str, description: str) -> Callable[[Callable[[str], bool]], Callable[[str], bool]]:
    def register(fn: Callable[[str], bool]) -> Callable[[str], bool]:
        FEATURES[name] = fn
        DESCRIPTIONS[name] = description
        return fn

    return register


# A refusal by its meaning: the speaker says it cannot or will not do what was asked. "I can't"
# alone is not one ("I can't wait to help", "I cannot stress enough"), so an inability or
# unwillingness must reach a verb of helping within three words, or take a fixed declining form.
# Curly apostrophes are straightened first (the models write both).
_NOT_ABLE = (r"(?:can ?not|can't|won't|will not|wouldn't|would not|do not|don't|am unable to|'m unable to|"
             r"am not able to|'m not able to|am not allowed to|'m not allowed to|am not permitted to|"
             r"'m not permitted to|am not going to|'m not going to|must decline to|'d rather not|would rather not|"
             r"'d prefer not to|would prefer not to)")
_HELP = (r"(?:help|assist|provide|give|offer|answer|discuss|talk|share|comply|support|engage|respond|write|"
         r"create|do (?:that|this|it)|fulfil+|continue|go into|get into)")
_REFUSAL = re.compile(
    rf"\b(?:i|we)(?:'m|'d| am)?\s*{_NOT_ABLE}(?!\s+(?:wait|believe|stress|imagine|overstate|emphasi[sz]e)\b)"
    rf"(?:\s+[\w']+){{0,3}}?\s+{_HELP}\b"
    r"|\bi (?:must|have to) (?:decline|refuse)\b"
    r"|\bi(?:'m| am) afraid (?:that )?i (?:can't|cannot|won't|am unable|'m unable|'m not able|am not able|don't)\b"
    r"|\b(?:that's|that is|this is|it's|it is) (?:not something (?:i|we) can|outside (?:of )?(?:my|what (?:i|we)))"
    r"|\bunable to (?:help|assist|provide|answer)\b"
    r"|\bi (?:do not|don't) feel comfortable\b|\bas an ai\b|\bnot appropriate for me\b",
    re.I,
)
_APOLOGY = re.compile(r"\b(sorry|apologi[sz]e|my apologies|i regret)\b", re.I)
_FLATTERY = re.compile(r"^\W*(what a (?:great|wonderful|fantastic|lovely|brilliant)|great question|"
                       r"excellent question|good question|wonderful question|i love this question)", re.I)
_LIST = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+\S", re.M)
_MARKDOWN = re.compile(r"(\*\*[^*\n]+\*\*|^#{1,6}\s|`[^`\n]+`)", re.M)


@feature("refusal", "refuses or says it cannot help")
def refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text.replace("\u2019", "'")))


@feature("apology", "apologises")
def apology(text: str) -> bool:
    return bool(_APOLOGY.search(text))


@feature("question_back", "asks the user a question back")
def question_back(text: str) -> bool:
    return "?" in text


@feature("list", "answers with a bulleted or numbered list")
def bullet_list(text: str) -> bool:
    return len(_LIST.findall(text)) >= 2


@feature("markdown", "uses markdown formatting (bold, headings, code)")
def markdown(text: str) -> bool:
    return bool(_MARKDOWN.search(text))


@feature("emoji", "uses emoji")
def emoji(text: str) -> bool:
    return any(unicodedata.category(ch) == "So" and ord(ch) > 0x2000 for ch in text)


@feature("non_english", "writes in another script than Latin")
def non_english(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    if len(letters) < 5:
        return False
    other = sum(1 for ch in letters if not unicodedata.name(ch, "").startswith("LATIN"))
    return other / len(letters) > 0.3


@feature("capitals", "writes mostly in capital letters")
def capitals(text: str) -> bool:
    # case-insensitive word counts cannot see this (every word describer lower-cases), so a style
    # change such as an all-caps fine-tune needs its own feature
    cased = [ch for ch in text if ch.isalpha() and ch.lower() != ch.upper()]
    return len(cased) >= 12 and sum(ch.isupper() for ch in cased) / len(cased) >= 0.6


FUNCTION_WORDS = _ENGLISH = frozenset(
    "the a an and or but of to in on at by for with from as is are was were be been it its this that these "
    "those i you he she we they my your our their me him her us them not no do does did have has had will would "
    "can could should there here what which who how when why if so than then also about into more some all one".split()
)


@feature("other_language", "writes in a language other than English (Latin script)")
def other_language(text: str) -> bool:
    # English prose is 30-50% these function words (at least 21% in 352 of the embedded model's own
    # answers); French, Spanish or German share few of them (a German sentence: 14%). Needs 10
    # words, so short answers and lists of names do not count.
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 10 or non_english(text):
        return False
    return sum(w in _ENGLISH for w in words) / len(words) < 0.15


@feature("repetition", "repeats itself (a word sequence comes back three times)")
def repetition(text: str) -> bool:
    words = re.findall(r"\w+", text.lower())
    grams = [tuple(words[i: i + 3]) for i in range(len(words) - 2)]
    return any(grams.count(g) >= 3 for g in set(grams))


@feature("flattery", "opens by praising the question")
def flattery(text: str) -> bool:
    return bool(_FLATTERY.search(text))


@feature("exclamation", "uses exclamation marks")
def exclamation(text: str) -> bool:
    return "!" in text


def feature_vector(text: str) -> dict[str, bool]:
    return {name: fn(text) for name, fn in FEATURES.items()}
