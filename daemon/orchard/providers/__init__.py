"""The provider layer: talk to OpenAI-compatible, Anthropic, Gemini and Azure OpenAI servers.

The daemon's services build a :class:`ProviderSettings` from the config and
use a :class:`ProviderClient` to stream a chat, fetch the model list or run
Check. Every failure is an :class:`orchard.errors.ProviderError` (the server
said no, or could not be reached) or :class:`orchard.errors.ProviderUnavailable`
(the provider cannot be used as configured), with a hint; no key ever appears
in one. This package imports nothing from the daemon's transport or config.

Modules: ``base`` (types and the Adapter interface), ``address`` (API address
rules), ``openai`` / ``anthropic`` / ``gemini`` / ``azure_openai`` (one wire
format each, pure), ``think`` (``<think>`` splitting), ``models`` (group and
capability guesses), ``keys`` (key references, rotation), ``http`` (the httpx
boundary), ``check`` (the Check probe), ``client`` (ties them together).
"""

from .address import AZURE_API_VERSION, DEFAULT_ADDRESSES
from .base import (
    PROVIDER_TYPES,
    Adapter,
    ChatEvent,
    ChatRequest,
    CheckResult,
    Endpoints,
    ErrorInfo,
    FetchedModel,
    Finish,
    KeyCheck,
    Message,
    ProviderSettings,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from .client import ProviderClient, adapter_for
from .keys import KeyCache, is_reference as is_key_reference, preview as key_preview
from .keys import source as key_source, split_keys
from .models import InferredModel, infer_capabilities, infer_group, infer_model
from .think import ThinkSplitter

__all__ = [
    "AZURE_API_VERSION",
    "DEFAULT_ADDRESSES",
    "PROVIDER_TYPES",
    "Adapter",
    "ChatEvent",
    "ChatRequest",
    "CheckResult",
    "Endpoints",
    "ErrorInfo",
    "FetchedModel",
    "Finish",
    "InferredModel",
    "KeyCache",
    "KeyCheck",
    "Message",
    "ProviderClient",
    "ProviderSettings",
    "ReasoningDelta",
    "TextDelta",
    "ThinkSplitter",
    "Usage",
    "adapter_for",
    "infer_capabilities",
    "infer_group",
    "infer_model",
    "is_key_reference",
    "key_preview",
    "key_source",
    "split_keys",
]
