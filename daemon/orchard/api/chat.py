"""`chat/*` and `usage/*`: send and stream, cancel, browse history, follow a chat from any client."""

from __future__ import annotations

from orchard.api.protocol import (
    ChatAttach,
    ChatCancel,
    ChatCancelled,
    ChatDelta,
    ChatDeleted,
    ChatDetached,
    ChatDetail,
    ChatDidUpdate,
    ChatFork,
    ChatList,
    ChatListResult,
    ChatRef,
    ChatRename,
    ChatResult,
    ChatSend,
    ChatSummary,
    UsageSummary,
    UsageSummaryParams,
)
from orchard.server.rpc import Context, Router

router = Router()
router.notification("chat/delta", ChatDelta)
router.notification("chat/didUpdate", ChatDidUpdate)


@router.method("chat/send")
async def chat_send(ctx: Context, params: ChatSend) -> ChatResult:
    """Send a message; the answer streams as `chat/delta` to this client and the chat's followers.

    Cancelled (`$/cancelRequest` or `chat/cancel`), it returns the partial answer
    with status `cancelled`; a provider error gives status `error` and the partial answer.
    """
    return await ctx.daemon.chats.send(params, origin=ctx.connection)


@router.method("chat/cancel")
async def chat_cancel(ctx: Context, params: ChatCancel) -> ChatCancelled:
    """Stop the answer being streamed in a chat, from any client."""
    return ChatCancelled(chat_id=params.chat_id, cancelled=ctx.daemon.chats.cancel(params.chat_id))


@router.method("chat/list")
async def chat_list(ctx: Context, params: ChatList) -> ChatListResult:
    """Chats, most recently updated first; `query` searches the messages' text."""
    return await ctx.daemon.chats.list(params)


@router.method("chat/get")
async def chat_get(ctx: Context, params: ChatRef) -> ChatDetail:
    """A chat with all its messages, and the answer streaming in it, if any."""
    return await ctx.daemon.chats.get(params.chat_id)


@router.method("chat/rename")
async def chat_rename(ctx: Context, params: ChatRename) -> ChatSummary:
    """Give a chat a title of your own."""
    return await ctx.daemon.chats.rename(params)


@router.method("chat/delete")
async def chat_delete(ctx: Context, params: ChatRef) -> ChatDeleted:
    """Delete a chat and its messages (a streaming answer in it is cancelled first)."""
    return await ctx.daemon.chats.delete(params.chat_id)


@router.method("chat/fork")
async def chat_fork(ctx: Context, params: ChatFork) -> ChatDetail:
    """A new chat with the messages up to and including one message."""
    return await ctx.daemon.chats.fork(params)


@router.method("chat/attach")
async def chat_attach(ctx: Context, params: ChatAttach) -> ChatDetail:
    """Follow a chat: the live answer's deltas after `fromSeq` are replayed, then every new one arrives.

    The replayed `chat/delta` notifications are sent before this answer.
    """
    return await ctx.daemon.attach(ctx.connection, params.chat_id, params.from_seq)


@router.method("chat/detach")
async def chat_detach(ctx: Context, params: ChatRef) -> ChatDetached:
    """Stop following a chat."""
    ctx.daemon.detach(ctx.connection, params.chat_id)
    return ChatDetached(chat_id=params.chat_id, following=False)


@router.method("usage/summary")
async def usage_summary(ctx: Context, params: UsageSummaryParams) -> UsageSummary:
    """Token usage totals, per provider, per model and per chat, over a time range."""
    return await ctx.daemon.chats.usage(params)
