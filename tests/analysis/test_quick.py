"""quick_summary: what the comparison model favours, in words, from texts a decode run already made."""

from cdx.analysis.quick import quick_summary, word_deltas, words_of


def record(tokens, logp_s, logp_c):
    return {"token_strs": tokens, "tokens": {"logp_s": logp_s, "logp_c": logp_c}}


def test_subword_tokens_join_into_words_with_summed_log_ratios():
    assert words_of([" Ar", "r", ",", " ma", "tey", "!", " ship", "\n", "ye"], [1, 2, 0, 3, 4, 0, 5, 0, 1]) == [
        ("arr", 3.0), ("matey", 7.0), ("ship", 5.0), ("ye", 1.0)]


def test_favoured_and_avoided_words_are_named():
    recs = [record([" Arr", " the", " AI"], [-5.0, -1.0, -1.0], [-1.0, -1.0, -4.0]) for _ in range(3)]
    lines = quick_summary(recs, "pirate")
    assert lines[0] == "pirate favours: 'arr' (+4.0, 3x)"
    assert lines[1] == "pirate avoids: 'ai' (-3.0, 3x)"
    assert "task=analyze" in lines[-1]
    assert [w for w, _, _ in word_deltas(recs)] == ["arr", "the", "ai"]


def test_analysis_samples_work_too_and_empty_input_says_so():
    sample = {"token_strs": [" arr", " arr"], "logp_s": [-3.0, -3.0], "logp_c": [-1.0, -1.0]}
    assert quick_summary([sample])[0].startswith("the comparison model favours: 'arr' (+2.0, 2x)")
    assert quick_summary([]) == ["No words occur often enough in these texts to say what changed."]
    flat = [record([" same"] * 3, [-1.0] * 3, [-1.0] * 3)]
    assert "more than 1.0 nats" in quick_summary(flat)[0]
