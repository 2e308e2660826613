"""Splitting a streamed answer into reasoning and answer at `<think>…</think>`.

Reasoning models served through OpenAI-compatible servers without a reasoning
parser (DeepSeek-R1 and QwQ on vLLM, Ollama, llama.cpp...) put their reasoning
in the content, wrapped in a leading ``<think>…</think>``. The tags may be
split across chunks in any place, so this is a small state machine fed one
chunk at a time; it holds back only the characters that could still turn out
to be part of a tag.

Only a *leading* ``<think>`` (possibly after whitespace) opens reasoning: an
answer that talks about think tags later on stays an answer.
"""

from __future__ import annotations

from .base import ReasoningDelta, TextDelta

OPEN = "<think>"
CLOSE = "</think>"


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is the start of `tag`."""
    for n in range(min(len(text), len(tag) - 1), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class ThinkSplitter:
    """Feed content chunks, get TextDelta / ReasoningDelta events back."""

    def __init__(self) -> None:
        # start: nothing decided yet; think: inside <think>; after: just closed,
        # skipping the whitespace between </think> and the answer; answer: pass through.
        self._mode = "start"
        self._buf = ""
        self._fresh = False  # inside <think> with no reasoning emitted yet

    def feed(self, chunk: str) -> list[TextDelta | ReasoningDelta]:
        if not chunk:
            return []
        if self._mode == "answer":
            return [TextDelta(chunk)]
        self._buf += chunk
        out: list[TextDelta | ReasoningDelta] = []
        if self._mode == "start":
            head = self._buf.lstrip()
            if not head or (len(head) < len(OPEN) and OPEN.startswith(head)):
                return out  # still could be a leading <think>
            if not head.startswith(OPEN):
                self._mode = "answer"
                text, self._buf = self._buf, ""
                return [TextDelta(text)]
            self._mode, self._fresh = "think", True
            self._buf = head[len(OPEN) :]
        if self._mode == "think":
            if self._fresh:
                # The newline models put right after <think> is layout, not reasoning.
                self._buf = self._buf.lstrip("\r\n")
                self._fresh = not self._buf
            end = self._buf.find(CLOSE)
            if end < 0:
                keep = _partial_suffix(self._buf, CLOSE)
                text = self._buf[: len(self._buf) - keep]
                self._buf = self._buf[len(self._buf) - keep :]
                if text:
                    out.append(ReasoningDelta(text))
                return out
            if end:
                out.append(ReasoningDelta(self._buf[:end]))
            self._buf = self._buf[end + len(CLOSE) :]
            self._mode = "after"
        if self._mode == "after":
            rest = self._buf.lstrip()
            self._buf = ""
            if rest:
                self._mode = "answer"
                out.append(TextDelta(rest))
        return out

    def flush(self) -> list[TextDelta | ReasoningDelta]:
        """At the end of the stream: whatever was held back, for what it turned out to be."""
        text, self._buf = self._buf, ""
        if not text:
            return []
        if self._mode == "start":
            return [TextDelta(text)]
        if self._mode == "think":  # an unclosed <think>: it was all reasoning
            return [ReasoningDelta(text)]
        return []
