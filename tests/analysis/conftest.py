"""The loopback `transformers serve` fixture of the assistant tests, reused for the judge's real-client test."""

from tests.assistant.test_assistant_openai_server import served  # noqa: F401
