"""The chat service: chats that live in the daemon, their answers streamed, stored and shared.

``send`` finds or creates the chat, picks the provider and model (the
request's, else the chat's last ones, else the config's ``default_model``,
else the first enabled provider's first model) and refuses clearly when that
cannot work. It stores the user's message before the request is made,
streams the answer through the provider pool while checkpointing it to the
store every half second, publishes every piece as a ``chat/delta`` and
returns the finished message.

Whatever ends the answer, it is stored and returned: ``complete``;
``cancelled`` (by ``chat/cancel`` from any client, by ``$/cancelRequest`` or
because the client left) with the partial text; or ``error`` with the partial
text and the provider's error. Cancelling closes the upstream HTTP request at
once: the stream is an async generator closed by ``aclosing``.

The service does not know about connections: it publishes deltas and chat
changes through the two callbacks it is given, with an opaque ``origin``
(the requesting client) that the daemon uses for fan-out.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

from msgspec import UNSET

from orchard.api import protocol as p
from orchard.chats.store import ChatRow, MessageRow, Store
from orchard.chats.views import chat_result, finished_row, message_info, summary
from orchard.config.providers import ProviderService
from orchard.config.schema import model_id
from orchard.errors import InvalidParams, NotFound, OrchardError, ProviderUnavailable
from orchard.providers import ChatRequest, Finish, Message, ReasoningDelta, TextDelta, Usage

log = logging.getLogger(__name__)

#: How often a streaming answer is written to disk: a crash loses at most this much.
CHECKPOINT_SECONDS = 0.5
TITLE_LENGTH = 60

OnDelta = Callable[[p.ChatDelta, Any], None]
OnUpdate = Callable[[str, str], None]


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(6)}"


@dataclass
class Answer:
    """An answer being streamed; everything a late follower needs to catch up."""

    chat_id: str
    message_id: str
    provider_id: str
    model: str
    task: asyncio.Task | None
    origin: Any = None
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    deltas: list[p.ChatDelta] = field(default_factory=list)
    usage: Usage | None = None
    finish_reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    first_token: float | None = None
    saved_seq: int = 0

    @property
    def seq(self) -> int:
        return len(self.deltas)


class ChatService:
    def __init__(self, providers: ProviderService, store: Store, on_delta: OnDelta, on_update: OnUpdate) -> None:
        self.providers = providers
        self.store = store
        self.on_delta = on_delta
        self.on_update = on_update
        self.live: dict[str, Answer] = {}

    # -- choosing the provider and model --------------------------------------------

    def target(self, provider_id: str | None, model: str | None) -> tuple[str, str]:
        config = self.providers.config.config
        if provider_id is None and config.default_model:
            default_pid, _, default_model = config.default_model.partition("/")
            if model is None or model == default_model:
                provider_id, model = default_pid, default_model
        if provider_id is None and model is not None:
            # Only a model: the first enabled provider that offers it.
            offering = [
                pid for pid, pc in config.providers.items() if pc.enabled and model in {model_id(m) for m in pc.models}
            ]
            if offering:
                provider_id = offering[0]
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
        if not model:
            model = ids[0]
        if model not in ids:
            raise NotFound(
                f"Provider `{provider_id}` has no model `{model}` (its models: {', '.join(ids)}).",
                hint=f"Add it with `orchard model add {provider_id} {model}`, or pick one of its models.",
                providerId=provider_id,
                model=model,
            )
        return provider_id, model

    def _models_of(self, provider_id: str) -> set[str]:
        pc = self.providers.config.provider(provider_id)
        return {model_id(m) for m in pc.models} if pc else set()

    # -- sending ------------------------------------------------------------------------

    async def send(self, params: p.ChatSend, origin: Any = None) -> p.ChatResult:
        turns = _turns(params)
        chat = await self._chat(_opt(params.chat_id)) if params.chat_id is not UNSET else None
        pid = _opt(params.provider_id)
        model = _opt(params.model)
        if chat is not None and pid is None:
            if model is None:
                pid, model = chat.provider_id, chat.model
            elif chat.provider_id and model in self._models_of(chat.provider_id):
                pid = chat.provider_id  # a new model from the same provider
        provider_id, model = self.target(pid, model)
        chat_id = chat.id if chat is not None else new_id("chat")
        if chat_id in self.live:
            raise OrchardError(
                f"Chat `{chat_id}` is already being answered.",
                hint="Wait for that answer, or cancel it with `chat/cancel` (`orchard` Ctrl-C).",
            )
        # Claimed before the first await: a second send to this chat is refused,
        # and chat/delete or chat/cancel reach this one from now on.
        answer = Answer(chat_id, new_id("msg"), provider_id, model, asyncio.current_task(), origin)
        self.live[chat_id] = answer
        try:
            return await self._answer(answer, chat, turns, params)
        except sqlite3.IntegrityError:  # the chat was deleted under us (chat/delete from another client)
            raise NotFound(f"Chat `{chat_id}` was deleted.", hint="Start a new chat.", chatId=chat_id) from None
        finally:
            if self.live.get(chat_id) is answer:
                del self.live[chat_id]

    async def _answer(
        self, answer: Answer, chat: ChatRow | None, turns: list[tuple[str, str]], params: p.ChatSend
    ) -> p.ChatResult:
        """Store the turns, stream the answer, store it: the body of `send` once the chat is claimed."""
        provider_id, model, chat_id = answer.provider_id, answer.model, answer.chat_id
        system = _system(params, chat)
        sampling = _sampling(params, chat)
        now = time.time()
        if chat is None:
            chat = ChatRow(
                id=chat_id, title=title_of(turns), provider_id=provider_id, model=model, system=system,
                params=sampling, created_at=now, updated_at=now,
            )  # fmt: skip
            await self.store.create_chat(chat)
            self.on_update(chat_id, "created")
        else:
            await self.store.update_chat(chat_id, provider_id=provider_id, model=model, system=system, params=sampling)
        history = await self.store.messages(chat_id)
        position = len(history)
        for role, text in turns:  # stored before the request is made: never lost
            row = MessageRow(new_id("msg"), chat_id, position, role, text, "", "complete", None, None, None)
            await self.store.add_message(row)
            history.append(row)
            position += 1
        streaming = MessageRow(
            answer.message_id, chat_id, position, "assistant", "", "", "streaming", None, provider_id, model,
            owner_pid=os.getpid(),
        )  # fmt: skip
        # From here the answer's row exists (the store's one thread writes it even if
        # this await is cancelled), so whatever happens next it is finished below.
        try:
            await asyncio.shield(self.store.add_message(streaming))
            self.on_update(chat_id, "message")
            request = ChatRequest(
                model=model,
                messages=_conversation(history),
                system=system,
                temperature=sampling.get("temperature"),
                top_p=sampling.get("top_p"),
                max_tokens=sampling.get("max_tokens"),
            )
            status, error = await self._stream(answer, request)
        except asyncio.CancelledError:  # cancelled before streaming began
            status, error = "cancelled", None
        result = chat_result(answer, status, error)
        saving = asyncio.ensure_future(self.store.finish_message(finished_row(chat_id, position, result)))
        try:
            await asyncio.shield(saving)
        except asyncio.CancelledError:  # cancelled again (the daemon is stopping): store it all the same
            await asyncio.wait({saving}, timeout=5)
        self.on_update(chat_id, "answered")
        return result

    async def _checkpoints(self, answer: Answer) -> None:
        """Write what has arrived every CHECKPOINT_SECONDS, also while the provider is silent."""
        while True:
            await asyncio.sleep(CHECKPOINT_SECONDS)
            if answer.seq != answer.saved_seq:
                answer.saved_seq = answer.seq
                self.store.checkpoint(answer.message_id, "".join(answer.text), "".join(answer.reasoning))

    async def _stream(self, answer: Answer, request: ChatRequest) -> tuple[str, p.ErrorInfo | None]:
        checkpoints = asyncio.create_task(self._checkpoints(answer), name=f"checkpoints {answer.chat_id}")
        try:
            return await self._stream_events(answer, request)
        finally:
            checkpoints.cancel()

    async def _stream_events(self, answer: Answer, request: ChatRequest) -> tuple[str, p.ErrorInfo | None]:
        try:
            async with self.providers.pool.use(answer.provider_id) as client:
                async with aclosing(client.chat(request)) as stream:
                    async for event in stream:
                        self._apply(answer, event)
        except asyncio.CancelledError:
            return "cancelled", None
        except OrchardError as exc:
            log.info("chat %s: %s from %s: %s", answer.chat_id, exc.kind, answer.provider_id, exc.message)
            return "error", p.ErrorInfo(
                kind=exc.kind, message=exc.message, hint=exc.hint, status=exc.data.get("status"),
                url=exc.data.get("url"), provider_message=exc.data.get("providerMessage"),
                retry_after=exc.data.get("retryAfter"),
            )  # fmt: skip
        return "complete", None

    def _apply(self, answer: Answer, event: object) -> None:
        if isinstance(event, (TextDelta, ReasoningDelta)):
            if not event.text:
                return
            now = time.monotonic()
            if answer.first_token is None:
                answer.first_token = now
            seq = answer.seq + 1
            if isinstance(event, TextDelta):
                answer.text.append(event.text)
                delta = p.ChatDelta(answer.chat_id, answer.message_id, seq, text=event.text)
            else:
                answer.reasoning.append(event.text)
                delta = p.ChatDelta(answer.chat_id, answer.message_id, seq, reasoning=event.text)
            answer.deltas.append(delta)
            self.on_delta(delta, answer.origin)
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

    # -- history --------------------------------------------------------------------------

    async def list(self, params: p.ChatList) -> p.ChatListResult:
        limit = max(1, min(params.limit, 500))
        query = _opt(params.query)
        rows = await self.store.list_chats(
            limit=limit + 1, before=_opt(params.before), before_id=_opt(params.before_id), query=query or None
        )
        more = len(rows) > limit
        rows = rows[:limit]
        last = rows[-1] if more and rows else None
        return p.ChatListResult(
            chats=[summary(c) for c in rows],
            next_before=last.updated_at if last else None,
            next_before_id=last.id if last else None,
        )

    async def get(self, chat_id: str) -> p.ChatDetail:
        chat = await self._chat(chat_id)
        messages = await self.store.messages(chat_id)
        live = self.live.get(chat_id)
        infos = [message_info(m) for m in messages]
        if live is not None:  # the stored row lags by up to a checkpoint: show what has arrived
            for info in infos:
                if info.id == live.message_id:
                    info.text, info.reasoning = "".join(live.text), "".join(live.reasoning)
        return p.ChatDetail(
            chat=summary(chat),
            system=chat.system,
            messages=infos,
            live=p.LiveAnswer(message_id=live.message_id, seq=live.seq) if live else None,
        )

    def replay(self, chat_id: str, from_seq: int) -> list[p.ChatDelta]:
        """The live answer's deltas after ``from_seq`` (nothing when no answer is streaming)."""
        live = self.live.get(chat_id)
        return [] if live is None else live.deltas[max(from_seq, 0) :]

    async def rename(self, params: p.ChatRename) -> p.ChatSummary:
        await self._chat(params.chat_id)
        title = params.title.strip()
        if not title:
            raise InvalidParams("The title is empty.", hint="Give the chat a title.")
        await self.store.update_chat(params.chat_id, title=title[:200])
        self.on_update(params.chat_id, "renamed")
        return summary(await self._chat(params.chat_id))

    async def delete(self, chat_id: str) -> p.ChatDeleted:
        await self._chat(chat_id)
        answer = self.live.get(chat_id)
        if answer is not None and answer.task is not None:
            answer.task.cancel()
            await asyncio.gather(answer.task, return_exceptions=True)
        deleted = await self.store.delete_chat(chat_id)
        self.on_update(chat_id, "deleted")
        return p.ChatDeleted(chat_id=chat_id, deleted=deleted)

    async def fork(self, params: p.ChatFork) -> p.ChatDetail:
        chat = await self._chat(params.chat_id)
        messages = await self.store.messages(chat.id)
        ids = [m.id for m in messages]
        if params.message_id not in ids:
            raise NotFound(
                f"Chat `{chat.id}` has no message `{params.message_id}`.",
                hint="Take a message id from `chat/get` (`orchard history show CHAT_ID --json`).",
                chatId=chat.id,
                messageId=params.message_id,
            )
        kept = messages[: ids.index(params.message_id) + 1]
        live = self.live.get(chat.id)
        if live is not None and kept[-1].id == live.message_id:  # the stored row lags by up to a checkpoint
            kept[-1] = MessageRow(**{**kept[-1].__dict__, "text": "".join(live.text), "reasoning": "".join(live.reasoning)})
        now = time.time()
        fork = ChatRow(
            id=new_id("chat"), title=f"{chat.title} (fork)"[:200], provider_id=chat.provider_id, model=chat.model,
            system=chat.system, params=chat.params, created_at=now, updated_at=now,
        )  # fmt: skip
        await self.store.create_chat(fork)
        copies = []
        for i, m in enumerate(kept):
            status = m.status if m.status != "streaming" else "cancelled"
            copies.append(MessageRow(**{**m.__dict__, "id": new_id("msg"), "chat_id": fork.id, "position": i, "status": status}))
        await self.store.copy_messages(copies)
        self.on_update(fork.id, "created")
        return await self.get(fork.id)

    async def usage(self, params: p.UsageSummaryParams) -> p.UsageSummary:
        pid = _opt(params.provider_id)
        data = await self.store.usage(since=_opt(params.since), until=_opt(params.until), provider_id=pid)

        def totals(row: dict[str, Any]) -> p.UsageTotals:
            return p.UsageTotals(
                messages=row["messages"] or 0, input_tokens=row["input_tokens"] or 0,
                output_tokens=row["output_tokens"] or 0, unreported=row["unreported"] or 0,
                provider_id=row.get("provider_id"), model=row.get("model"), chat_id=row.get("chat_id"),
                title=row.get("title"),
            )  # fmt: skip

        return p.UsageSummary(
            total=totals(data["total"][0]),
            providers=[totals(r) for r in data["providers"]],
            models=[totals(r) for r in data["models"]],
            chats=[totals(r) for r in data["chats"]],
        )

    async def last_chat_id(self) -> str | None:
        chat = await self.store.last_chat()
        return chat.id if chat else None

    async def _chat(self, chat_id: str) -> ChatRow:
        chat = await self.store.get_chat(chat_id)
        if chat is None:
            raise NotFound(
                f"There is no chat `{chat_id}`.",
                hint="Run `orchard history list` to see your chats.",
                chatId=chat_id,
            )
        return chat


# -- helpers --------------------------------------------------------------------------------


def title_of(turns: list[tuple[str, str]]) -> str:
    """A chat's title: its first user message, cut at a word near 60 characters."""
    text = next((t for r, t in turns if r == "user"), turns[0][1] if turns else "New chat")
    text = " ".join(text.split())
    if len(text) <= TITLE_LENGTH:
        return text or "New chat"
    cut = text[:TITLE_LENGTH].rsplit(" ", 1)[0]
    return (cut if len(cut) > TITLE_LENGTH // 2 else text[:TITLE_LENGTH]) + "…"


def _turns(params: p.ChatSend) -> list[tuple[str, str]]:
    if params.message is not UNSET and params.messages is not UNSET:
        raise InvalidParams("Give either `message` or `messages`, not both.")
    if params.message is not UNSET:
        if not params.message.strip():
            raise InvalidParams("The message is empty.", hint="Type something to send.")
        return [("user", params.message)]
    if params.messages is UNSET or not params.messages:
        raise InvalidParams("There is no message to send.", hint="Give `message` (the next user turn) or `messages`.")
    turns = [(m.role, m.content) for m in params.messages if m.role != "system"]
    if not any(role == "user" for role, _ in turns):
        raise InvalidParams("`messages` has no user message.", hint="Add the user's message to send.")
    return turns


def _system(params: p.ChatSend, chat: ChatRow | None) -> str | None:
    parts = [m.content for m in (params.messages or []) if m.role == "system"] if params.messages is not UNSET else []
    if params.system is not UNSET:
        parts.insert(0, params.system)
    if parts:
        return "\n\n".join(x for x in parts if x) or None
    return chat.system if chat else None


def _sampling(params: p.ChatSend, chat: ChatRow | None) -> dict[str, Any]:
    out = dict(chat.params) if chat else {}
    if params.params is not UNSET:
        for name in ("temperature", "top_p", "max_tokens"):
            value = getattr(params.params, name)
            if value is not UNSET:
                out[name] = value
    return out


def _conversation(history: list[MessageRow]) -> list[Message]:
    """What the provider is sent: user messages and answers that have text, in order.

    Turns of the same role in a row (a question whose answer failed, then the
    next question) are joined, since some providers require turns to alternate.
    """
    out: list[Message] = []
    for m in history:
        if m.role not in ("user", "assistant") or (m.role == "assistant" and not m.text):
            continue
        if out and out[-1].role == m.role:
            out[-1] = Message(m.role, f"{out[-1].content}\n\n{m.text}")
        else:
            out.append(Message(m.role, m.text))
    return out


def _opt(value: Any) -> Any:
    return None if value is UNSET else value
