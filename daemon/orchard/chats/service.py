"""The chat service: one answer streamed from a provider, with cancel, usage and timings.

``send`` picks the provider and model (the request's, else the config's
``default_model``, else the first enabled provider's first model), refuses
clearly when that cannot work (unknown, switched off, no models), streams
the answer through the provider pool, hands every piece to the caller as a
``chat/delta`` and returns the finished message.

Whatever ends the answer, the caller gets a result: ``complete``;
``cancelled`` (by ``chat/cancel`` from any client, by ``$/cancelRequest``,
or because the client left) with the partial text; or ``error`` with the
partial text and the provider's error. Cancelling closes the upstream HTTP
request at once: the stream is an async generator closed by ``aclosing``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field

from msgspec import UNSET

from orchard.api import protocol as p
from orchard.config.providers import ProviderService
from orchard.config.schema import model_id
from orchard.errors import NotFound, OrchardError, ProviderUnavailable
from orchard.providers import ChatRequest, Finish, Message, ReasoningDelta, TextDelta, Usage

log = logging.getLogger(__name__)

Deltas = Callable[[p.ChatDelta], None]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


@dataclass
class Answer:
    """An answer being streamed; what every reader of it needs."""

    chat_id: str
    message_id: str
    provider_id: str
    model: str
    task: asyncio.Task | None
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    seq: int = 0
    pieces: int = 0
    usage: Usage | None = None
    finish_reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None


class ChatService:
    def __init__(self, providers: ProviderService) -> None:
        self.providers = providers
        self.live: dict[str, Answer] = {}

    # -- choosing the provider and model --------------------------------------------

    def target(self, provider_id: str | None, model: str | None) -> tuple[str, str]:
        config = self.providers.config.config
        if provider_id is None and model is None and config.default_model:
            provider_id, _, model = config.default_model.partition("/")
        if provider_id is None:
            usable = [pid for pid, pc in config.providers.items() if pc.enabled and pc.models]
            if not usable:
                raise ProviderUnavailable(
                    "No provider is ready to chat: none is enabled with a model.",
                    hint="Add one, e.g. `orchard provider add vLLM --type openai --url http://localhost:8000/` "
                    "then `orchard model add vllm gpt2`.",
                )
            provider_id = usable[0]
        pc = self.providers.require(provider_id)
        if not pc.enabled:
            raise ProviderUnavailable(
                f"Provider `{provider_id}` is switched off.",
                hint=f"Turn it on with `orchard provider enable {provider_id}`.",
                providerId=provider_id,
            )
        ids = [model_id(m) for m in pc.models]
        if not ids:
            raise ProviderUnavailable(
                f"Provider `{provider_id}` has no models yet.",
                hint=f"Add one with `orchard model add {provider_id} MODEL`, or see what it offers with "
                f"`orchard model fetch {provider_id}`.",
                providerId=provider_id,
            )
        if model is None or model == "":
            model = ids[0]
        if model not in ids:
            raise NotFound(
                f"Provider `{provider_id}` has no model `{model}` (its models: {', '.join(ids)}).",
                hint=f"Add it with `orchard model add {provider_id} {model}`, or pick one of its models.",
                providerId=provider_id,
                model=model,
            )
        return provider_id, model

    # -- sending ------------------------------------------------------------------------

    async def send(self, params: p.ChatSend, on_delta: Deltas) -> p.ChatResult:
        provider_id, model = self.target(_opt(params.provider_id), _opt(params.model))
        if not params.messages:
            raise OrchardError("There is no message to send.", hint="Give at least one user message.")
        chat_id = _opt(params.chat_id) or new_id("chat")
        if chat_id in self.live:
            raise OrchardError(
                f"Chat `{chat_id}` is already being answered.",
                hint="Wait for that answer, or cancel it with `chat/cancel`.",
            )
        sampling = params.params if params.params is not UNSET else p.ChatParams()
        request = ChatRequest(
            model=model,
            messages=[Message(m.role, m.content) for m in params.messages if m.role != "system"],
            system=_system(params),
            temperature=_opt(sampling.temperature),
            top_p=_opt(sampling.top_p),
            max_tokens=_opt(sampling.max_tokens),
        )
        answer = Answer(chat_id, new_id("msg"), provider_id, model, asyncio.current_task())
        self.live[chat_id] = answer
        status, error = "complete", None
        try:
            async with self.providers.pool.use(provider_id) as client:
                async with aclosing(client.chat(request)) as stream:
                    async for event in stream:
                        self._apply(answer, event, on_delta)
        except asyncio.CancelledError:
            status = "cancelled"
        except OrchardError as exc:
            status = "error"
            error = p.ErrorInfo(kind=exc.kind, message=exc.message, hint=exc.hint, status=exc.data.get("status"))
            log.info("chat %s: %s from %s: %s", chat_id, exc.kind, provider_id, exc.message)
        finally:
            self.live.pop(chat_id, None)
        return _result(answer, status, error)

    def _apply(self, answer: Answer, event: object, on_delta: Deltas) -> None:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            if not event.text:
                return
            if answer.first_token is None:
                answer.first_token = time.monotonic()
            answer.seq += 1
            answer.pieces += 1
            if isinstance(event, TextDelta):
                answer.text.append(event.text)
                delta = p.ChatDelta(answer.chat_id, answer.message_id, answer.seq, text=event.text)
            else:
                answer.reasoning.append(event.text)
                delta = p.ChatDelta(answer.chat_id, answer.message_id, answer.seq, reasoning=event.text)
            on_delta(delta)
        elif isinstance(event, Usage):
            answer.usage = event
        elif isinstance(event, Finish):
            answer.finish_reason = event.reason

    def cancel(self, chat_id: str) -> bool:
        answer = self.live.get(chat_id)
        if answer is None or answer.task is None or answer.task.done():
            return False
        answer.task.cancel()
        return True


def _result(answer: Answer, status: str, error: p.ErrorInfo | None) -> p.ChatResult:
    now = time.monotonic()
    total_ms = int((now - answer.started) * 1000)
    first_ms = None if answer.first_token is None else int((answer.first_token - answer.started) * 1000)
    usage = None
    tokens: int | None = answer.pieces or None
    estimated = True
    if answer.usage is not None:
        usage = p.TokenUsage(input_tokens=answer.usage.input_tokens, output_tokens=answer.usage.output_tokens)
        if answer.usage.output_tokens is not None:
            tokens, estimated = answer.usage.output_tokens, False
    rate = None
    if tokens and answer.first_token is not None and now - answer.first_token > 0.001:
        # Generation speed: from the first token to the end, as llama.cpp and Cherry report it.
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


def _system(params: p.ChatSend) -> str | None:
    parts = [m.content for m in params.messages if m.role == "system"]
    if params.system is not UNSET and params.system:
        parts.insert(0, params.system)
    return "\n\n".join(parts) or None


def _opt(value):
    return None if value is UNSET else value
