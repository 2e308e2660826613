"""`chat/*`: send messages to a model and stream the answer; cancel it."""

from __future__ import annotations

from orchard.api.protocol import ChatCancel, ChatCancelled, ChatDelta, ChatResult, ChatSend
from orchard.server.rpc import Context, Router

router = Router()
router.notification("chat/delta", ChatDelta)


@router.method("chat/send")
async def chat_send(ctx: Context, params: ChatSend) -> ChatResult:
    """Stream the answer as `chat/delta` notifications to this client; return the finished message.

    Cancelled (`$/cancelRequest` or `chat/cancel`), it returns the partial answer
    with status `cancelled`; a provider error gives status `error` and the partial answer.
    """
    return await ctx.daemon.chats.send(params, lambda delta: ctx.notify("chat/delta", delta))


@router.method("chat/cancel")
async def chat_cancel(ctx: Context, params: ChatCancel) -> ChatCancelled:
    """Stop the answer being streamed in a chat, from any client."""
    return ChatCancelled(chat_id=params.chat_id, cancelled=ctx.daemon.chats.cancel(params.chat_id))
