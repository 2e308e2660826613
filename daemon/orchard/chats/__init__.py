"""Chats: sending messages to a model, streaming the answer, cancelling it."""
