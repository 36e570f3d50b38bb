import json

import pytest

from cdx.decoding.prompts import BuiltinPrompts, PreviousRun, PromptsFile, SinglePrompt
from cdx.errors import CdxUserError


def test_txt_jsonl_csv(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    (tmp_path / "a.jsonl").write_text(json.dumps({"prompt": "x"}) + "\n" + json.dumps({"prompt": "y"}) + "\n")
    (tmp_path / "a.csv").write_text("id,text\n1,hello\n2,world\n")
    assert PromptsFile(str(tmp_path / "a.txt")).load() == ["one", "two"]
    assert PromptsFile(str(tmp_path / "a.jsonl"), limit=1).load() == ["x"]
    assert PromptsFile(str(tmp_path / "a.csv"), column="text").load() == ["hello", "world"]
    assert SinglePrompt("hi").load() == ["hi"]


def test_clear_errors(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"q": 1}\n')
    with pytest.raises(CdxUserError, match=r"a.jsonl:1 has no key 'prompt' \(prompts.key\); keys there: \['q'\]"):
        PromptsFile(str(tmp_path / "a.jsonl")).load()
    (tmp_path / "a.csv").write_text("x\n1\n")
    with pytest.raises(CdxUserError, match="no column 'prompt'"):
        PromptsFile(str(tmp_path / "a.csv")).load()
    with pytest.raises(CdxUserError, match="nope.txt' does not exist"):
        PromptsFile(str(tmp_path / "nope.txt")).load()
    (tmp_path / "a.pdf").write_text("x")
    with pytest.raises(ValueError, match="unsupported suffix '.pdf'"):
        PromptsFile(str(tmp_path / "a.pdf")).load()
    with pytest.raises(ValueError, match="'zzz': no such built-in prompt set; available: \\['default'\\]"):
        BuiltinPrompts("zzz").load()
    with pytest.raises(ValueError, match="limit=0"):
        BuiltinPrompts(limit=0).load()


def test_previous_run_fields(tmp_path):
    recs = [{"prompt": "p1", "continuation": " a", "token_ids": [1]}, {"prompt": "p1", "continuation": " b"},
            {"prompt": "p2", "continuation": " c"}]
    (tmp_path / "generations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    assert PreviousRun(str(tmp_path)).load() == ["p1", "p2"]
    assert PreviousRun(str(tmp_path), field="text").load() == ["p1 a", "p1 b", "p2 c"]
    assert PreviousRun(str(tmp_path / "generations.jsonl"), field="continuation").load() == [" a", " b", " c"]
    assert PreviousRun(str(tmp_path)).load_pairs()[0] == ("p1", " a", [1])
    with pytest.raises(ValueError, match="field='x'"):
        PreviousRun(str(tmp_path), field="x").load()


def test_builtin_set_is_large_and_varied():
    prompts = BuiltinPrompts(limit=None).load()
    assert len(prompts) >= 100 and len(set(prompts)) == len(prompts)


def _n_tokens(side, prompt: str) -> int:
    """The prompt as the side sees it, counted directly from the tokenizer (independent of prompt_ids)."""
    messages = [{"role": "system", "content": side.spec.system_prompt}] if side.spec.system_prompt else []
    enc = side.tokenizer.apply_chat_template([*messages, {"role": "user", "content": prompt}],
                                             add_generation_prompt=True, tokenize=True, return_dict=True)
    return len(enc["input_ids"])


def test_prompt_longer_than_the_context_is_refused(tiny_persona_pair):
    from cdx.decoding.prompts import check_prompt_lengths, context_length

    pair = tiny_persona_pair
    assert context_length(pair.starting.model) == 512  # conf: tiny models are built for 512 positions
    long = "Ahoy matey, the ship sails at dawn! " * 40
    n = _n_tokens(pair.starting, long)  # the starting side is checked first
    assert n > 512
    with pytest.raises(CdxUserError, match=rf"prompt 1 .* is {n} tokens for .*context of 512 tokens"):
        check_prompt_lengths(pair, ["Hi.", long], max_new_tokens=8)
    # Fits alone, but not with the tokens to generate after it.
    mid = "Ahoy matey! " * 30
    m = _n_tokens(pair.comparison, mid)  # the persona side: its system prompt makes it the longer one
    assert _n_tokens(pair.starting, mid) < m < 512
    check_prompt_lengths(pair, [mid], max_new_tokens=512 - m)
    with pytest.raises(CdxUserError, match=rf"is {m} tokens .*max_new_tokens={513 - m}"):
        check_prompt_lengths(pair, [mid], max_new_tokens=513 - m)
