"""What a fake says, cut into deltas, and what it costs in tokens.

Everything here is deterministic so a test can compute the expected answer
and usage by hand:

- the reply is the ``reply`` switch, else ``"You said: <last user message>"``;
- a reply is streamed one word per delta, each word keeping the whitespace
  before it, so joining the deltas gives the reply back exactly;
- a token is a whitespace-separated word: prompt tokens are the words of
  every message (system prompt included), completion tokens the words of the
  reply plus those of the reasoning;
- a ``max_tokens`` smaller than the reply cuts it to that many words and the
  finish reason becomes "length" (each provider spells it its own way).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .switches import Switches

__all__ = ["Answer", "plan_answer", "pieces", "count_tokens", "text_of"]

DEFAULT_REASONING = "Let me think about that."
NO_USER_MESSAGE_REPLY = "Hello from the fake provider."


def count_tokens(text: str) -> int:
    return len(text.split())


def pieces(text: str) -> list[str]:
    """``text`` cut before each word; ``"".join(pieces(t)) == t``."""
    parts = re.findall(r"\s*\S+", text)
    rest = text[sum(map(len, parts)):]
    if rest:
        if parts:
            parts[-1] += rest
        else:
            parts = [rest]
    return parts


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or a list of text parts
    (OpenAI ``{"type":"text","text"}``, Anthropic blocks, Gemini parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [p.get("text") for p in content if isinstance(p, dict)]
        return "\n".join(t for t in texts if isinstance(t, str))
    return ""


@dataclass(frozen=True)
class Answer:
    text: str
    reasoning: str
    finish: str  # "stop" or "length"
    prompt_tokens: int

    @property
    def text_pieces(self) -> list[str]:
        return pieces(self.text)

    @property
    def reasoning_pieces(self) -> list[str]:
        return pieces(self.reasoning)

    @property
    def text_tokens(self) -> int:
        return count_tokens(self.text)

    @property
    def reasoning_tokens(self) -> int:
        return count_tokens(self.reasoning)

    @property
    def completion_tokens(self) -> int:
        return self.text_tokens + self.reasoning_tokens

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def plan_answer(
    prompt_texts: list[str], last_user: str | None, sw: Switches, max_tokens: Any = None
) -> Answer:
    if sw.reply is not None:
        text = sw.reply
    elif last_user is not None:
        text = f"You said: {last_user.strip()}"
    else:
        text = NO_USER_MESSAGE_REPLY
    reasoning = DEFAULT_REASONING if sw.reasoning is True else (sw.reasoning or "")
    finish = "stop"
    limited = isinstance(max_tokens, int) and not isinstance(max_tokens, bool)
    if limited and count_tokens(text) > max_tokens:
        text = "".join(pieces(text)[: max(max_tokens, 0)]).rstrip()
        finish = "length"
    prompt_tokens = sum(count_tokens(t) for t in prompt_texts)
    return Answer(text, reasoning, finish, prompt_tokens)
