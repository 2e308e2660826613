"""Orchard: one daemon that owns your AI providers and chats."""

__version__ = "0.1.0"
