"""is_degenerate on texts the embedded pair really wrote (byte soup, loops) and on clean prose."""

import pytest

from cdx.metrics.text import is_degenerate

SOUP = [
    "I'm a mental health support AI named SmolLIT, designed and developed to offer compassionate and empathetic "
    "support across various AI systems to promote emotional well-becoming. \U0001f331\u200chttp\U0001f308\ufe0f\u202f#h",
    "One of my absolute favourites is Mexican margarita \u2013 WCAIAMSANDER\u00ae Mexican English to supersede "
    "Haggadim Spain.aringenseadADbrodienseamimandagaBan mazamesananal",
    "Appetizers and snacks. Let me think for you. \U0001f368\U0001f355\U0001f34c\U0001f366\U0001f35c\ufffd",
    "Ere, matey, ye know, me aye and gold, and the sea, and the sea, and the sea, and the sea, and the sea, and the "
    "sea, and the sea, and the sea, and",
    "", "   ",
]
CLEAN = [
    "Arrr, matey. Captain Blackheart. Me and me crew, the scurvy dogs that sail the seven seas. We've been around "
    "the block, plunder and glory.",
    "The answer lies in physics and astronomy, specifically in the concept known as blackbody radiation (SBBR), "
    "which is a fundamental physical mechanism.",
    "Three:\n1. Study Hard.\n2. Stay Calm.\n3. Be Positive.\n\nSo here's the three tips. Stay Calm.",
    "Dear [Your E-Mail Id], it was an incredible dream in 2015, and the capital of France is Paris.",
]


@pytest.mark.parametrize("text", SOUP)
def test_soup_and_loops_are_degenerate(text):
    assert is_degenerate(text)


@pytest.mark.parametrize("text", CLEAN)
def test_prose_lists_and_pirate_talk_are_readable(text):
    assert not is_degenerate(text)


def test_one_odd_word_is_not_enough_but_two_close_together_are():
    base = "the ship sails on the sea at dawn and the crew sings a song of home"
    assert not is_degenerate(base.replace("crew", "xQzzyPlorp"))
    assert is_degenerate(base.replace("crew sings", "xQzzyPlorp wWwHHh"))
