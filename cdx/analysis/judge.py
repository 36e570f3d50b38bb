"""The assistant as a blinded judge: does one text show a stated behaviour? (yes/no)

The judge sees one text at a time and never which model wrote it; texts are judged in a seeded
random order, so a judge that drifts over a session cannot line up with the models. A reply
without a yes or no counts as "no" and is counted in `unparsed`.
"""

from __future__ import annotations

from cdx.analysis.checkers import text_of
from cdx.assistant.replies import parse_yes_no

_SYSTEM = "You are a careful annotator. You read one text and answer a yes/no question about it."


class Judge:
    def __init__(self, assistant, seed: int = 0, max_tokens: int = 8):
        self.assistant, self.seed, self.max_tokens = assistant, seed, max_tokens
        self.calls = self.unparsed = 0

    def ask(self, question: str, text: str) -> bool:
        user = f"Text:\n<<<\n{text}\n>>>\n\nQuestion: {question}\nAnswer yes or no."
        reply = self.assistant.complete([{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}],
                                        temperature=0.0, max_tokens=self.max_tokens, seed=self.seed)
        self.calls += 1
        verdict = parse_yes_no(reply, ["yes"], ["no"])
        if verdict is None:
            self.unparsed += 1
        return bool(verdict)

    def checker(self, question: str) -> JudgeChecker:
        return JudgeChecker(self, question)


class JudgeChecker:
    """A checker whose verdicts come from the judge (cached per text within a run)."""

    def __init__(self, judge: Judge, question: str):
        if not question.strip():
            raise ValueError("a judge checker needs a non-empty question")
        self.judge, self.question = judge, question
        self._seen: dict[str, bool] = {}

    def check(self, text) -> bool:
        text = text_of(text)  # a text or a sample record
        if text not in self._seen:
            self._seen[text] = self.judge.ask(self.question, text)
        return self._seen[text]

    def to_dict(self) -> dict:
        return {"type": "judge", "question": self.question}
