"""Chats as the protocol shows them: stored rows and live answers turned into wire types.

Pure functions, no I/O: a finished or streaming answer becomes a
``ChatResult`` (with usage, or null when the provider reported none, and
timings with tokens/s estimated from the pieces when it did not), and the
store's rows become ``ChatSummary`` / ``MessageInfo``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from orchard.api import protocol as p
from orchard.chats.store import ChatRow, MessageRow

if TYPE_CHECKING:
    from orchard.chats.service import Answer


def chat_result(answer: "Answer", status: str, error: p.ErrorInfo | None) -> p.ChatResult:
    now = time.monotonic()
    total_ms = int((now - answer.started) * 1000)
    first_ms = None if answer.first_token is None else int((answer.first_token - answer.started) * 1000)
    usage = None
    tokens: int | None = answer.seq or None
    estimated = True
    if answer.usage is not None:
        usage = p.TokenUsage(input_tokens=answer.usage.input_tokens, output_tokens=answer.usage.output_tokens)
        if answer.usage.output_tokens is not None:
            tokens, estimated = answer.usage.output_tokens, False
    rate = None
    if tokens and answer.first_token is not None and now - answer.first_token > 0.001:
        # Generation speed, from the first token to the end, as llama.cpp and Cherry report it.
        rate = round(tokens / (now - answer.first_token), 1)
    return p.ChatResult(
        chat_id=answer.chat_id,
        message_id=answer.message_id,
        provider_id=answer.provider_id,
        model=answer.model,
        text="".join(answer.text),
        reasoning="".join(answer.reasoning),
        finish_reason=answer.finish_reason,
        status=status,
        usage=usage,
        timings=p.Timings(first_token_ms=first_ms, total_ms=total_ms, tokens_per_second=rate, estimated=estimated),
        error=error,
    )


def finished_row(chat_id: str, position: int, r: p.ChatResult) -> MessageRow:
    return MessageRow(
        id=r.message_id, chat_id=chat_id, position=position, role="assistant", text=r.text, reasoning=r.reasoning,
        status=r.status, error=None if r.error is None else _error_dict(r.error), provider_id=r.provider_id,
        model=r.model, input_tokens=r.usage.input_tokens if r.usage else None,
        output_tokens=r.usage.output_tokens if r.usage else None, first_token_ms=r.timings.first_token_ms,
        total_ms=r.timings.total_ms, tokens_per_second=r.timings.tokens_per_second, estimated=r.timings.estimated,
        finish_reason=r.finish_reason,
    )  # fmt: skip


def _error_dict(e: p.ErrorInfo) -> dict[str, Any]:
    return {
        "kind": e.kind, "message": e.message, "hint": e.hint, "status": e.status, "url": e.url,
        "providerMessage": e.provider_message, "retryAfter": e.retry_after,
    }  # fmt: skip


def summary(c: ChatRow) -> p.ChatSummary:
    return p.ChatSummary(
        id=c.id, title=c.title, provider_id=c.provider_id, model=c.model, created_at=c.created_at,
        updated_at=c.updated_at, message_count=c.message_count,
    )  # fmt: skip


def message_info(m: MessageRow) -> p.MessageInfo:
    answered = m.role == "assistant" and m.status != "streaming"
    usage = None
    if m.input_tokens is not None or m.output_tokens is not None:
        usage = p.TokenUsage(input_tokens=m.input_tokens, output_tokens=m.output_tokens)
    timings = None
    if answered and m.total_ms is not None:
        timings = p.Timings(
            first_token_ms=m.first_token_ms, total_ms=m.total_ms, tokens_per_second=m.tokens_per_second,
            estimated=bool(m.estimated),
        )  # fmt: skip
    error = None
    if m.error:
        error = p.ErrorInfo(
            kind=m.error.get("kind", "error"), message=m.error.get("message", ""), hint=m.error.get("hint"),
            status=m.error.get("status"), url=m.error.get("url"), provider_message=m.error.get("providerMessage"),
            retry_after=m.error.get("retryAfter"),
        )  # fmt: skip
    return p.MessageInfo(
        id=m.id, role=m.role, text=m.text, reasoning=m.reasoning, status=m.status, error=error,
        provider_id=m.provider_id, model=m.model, usage=usage, timings=timings, finish_reason=m.finish_reason,
        created_at=m.created_at,
    )  # fmt: skip
