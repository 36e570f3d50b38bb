"""Assistant LLMs behind one interface: `complete(messages, temperature, max_tokens, seed) -> str`.

`LocalAssistant` (a Hugging Face chat model in-process), `OpenAIAssistant` (any OpenAI-compatible
endpoint), `ScriptedAssistant` (canned replies, for tests) and `CachedAssistant` (on-disk cache
around any of them). Built from `conf/assistant/*.yaml`.
"""

from cdx.assistant._base import Assistant, AssistantAuthError, AssistantError, AssistantFatalError, AssistantUnreachable, Message
from cdx.assistant._cache import CachedAssistant
from cdx.assistant._local import LocalAssistant
from cdx.assistant._openai import OpenAIAssistant
from cdx.assistant._scripted import ScriptedAssistant
from cdx.assistant.replies import parse_prompts, parse_yes_no

__all__ = [
    "Assistant", "AssistantAuthError", "AssistantError", "AssistantFatalError", "AssistantUnreachable",
    "CachedAssistant", "LocalAssistant", "Message", "OpenAIAssistant", "ScriptedAssistant", "parse_prompts",
    "parse_yes_no",
]
