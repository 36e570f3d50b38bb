"""quick_summary: what the comparison model favours, in words, from texts a decode run already made."""

import math

import pytest

from cdx.analysis.quick import characteristic_phrase, quick_summary, word_deltas, words_of


def record(tokens, logp_s, logp_c):
    return {"token_strs": tokens, "tokens": {"logp_s": logp_s, "logp_c": logp_c}}


def test_subword_tokens_join_into_words_with_summed_log_ratios():
    assert words_of([" Ar", "r", ",", " ma", "tey", "!", " ship", "\n", "ye"], [1, 2, 0, 3, 4, 0, 5, 0, 1]) == [
        ("arr", 3.0), ("matey", 7.0), ("ship", 5.0), ("ye", 1.0)]


def test_favoured_and_avoided_words_are_named():
    recs = [record([" Arr", " the", " AI"], [-5.0, -1.0, -1.0], [-1.0, -1.0, -4.0]) for _ in range(3)]
    lines = quick_summary(recs, "pirate")
    assert lines[0].startswith('pirate writes "Arr": in 3 of these 3 texts, each time 55x as likely')
    assert lines[1] == "pirate favours: 'arr' (+4.0, 3x)"
    assert lines[2] == "pirate avoids: 'ai' (-3.0, 3x)"
    assert "task=analyze" in lines[-1]
    assert [w for w, _, _ in word_deltas(recs)] == ["arr", "the", "ai"]


def test_analysis_samples_work_too_and_empty_input_says_so():
    sample = {"token_strs": [" arr", " arr"], "logp_s": [-3.0, -3.0], "logp_c": [-1.0, -1.0]}
    assert quick_summary([sample])[0].startswith("the comparison model favours: 'arr' (+2.0, 2x)")  # 1 text: no phrase
    assert quick_summary([]) == ["No words occur often enough in these texts to say what changed."]
    flat = [record([" same"] * 3, [-1.0] * 3, [-1.0] * 3)]
    assert "more than 1.0 nats" in quick_summary(flat)[0]


def test_the_characteristic_phrase_is_the_most_favoured_run_of_words_in_enough_texts():
    """Six texts; "Ahoy, matey" in four (its words +2 and +3 nats each time), "ship" in two (+6),
    "the" everywhere (0). The phrase is "Ahoy, matey": 'ship' is in too few texts, and 'the' after
    it adds nothing, so the shorter run wins the tie."""
    pirate = [" Ahoy", ",", " ma", "tey", " the", " sea"]
    ship = [" the", " ship", " sails"]
    recs = ([record(pirate, [-5.0, -1.0, -4.0, -4.0, -1.0, -2.0], [-3.0, -1.0, -2.0, -3.0, -1.0, -2.0])
             for _ in range(4)]
            + [record(ship, [-1.0, -8.0, -2.0], [-1.0, -2.0, -2.0]) for _ in range(2)])
    assert words_of(pirate, [2, 0, 2, 1, 0, 0]) == [("ahoy", 2), ("matey", 3), ("the", 0), ("sea", 0)]
    phrase, k, n, d = characteristic_phrase(recs)  # spelt as the texts spell it
    assert (phrase, k, n) == ("Ahoy, matey", 4, 6) and d == pytest.approx(5.0)
    assert characteristic_phrase(recs, min_texts=5) is None  # in 4 texts only
    assert characteristic_phrase(recs, min_delta=6.0) is None  # +5 per occurrence
    line = quick_summary(recs, "pirate")[0]
    assert line == (f'pirate writes "Ahoy, matey": in 4 of these 6 texts, each time {math.exp(5):.0f}x as likely '
                    "under it as under the starting model (log p_c - log p_s +5.0)")


def test_texts_that_show_the_starting_model_lead_with_its_phrase():
    """Upstream's rule (p_s - p_c) writes what the starting model says: the line names its phrase."""
    plain = [" As", " an", " AI", " model"]
    recs = [record(plain, [-1.0, -1.0, -2.0, -1.0], [-1.0, -1.0, -6.0, -4.0]) for _ in range(4)]
    assert characteristic_phrase(recs) is None  # nothing these texts hold is favoured by the comparison model
    phrase, k, n, d = characteristic_phrase(recs, favours="starting")
    assert (phrase, k, n) == ("AI model", 4, 4) and d == pytest.approx(-7.0)
    line = quick_summary(recs, "pirate", shows="starting")[0]
    assert line == ('the starting model writes "AI model": in 4 of these 4 texts, each time over 1000x as likely '
                    "under it as under pirate (log p_c - log p_s -7.0)")
