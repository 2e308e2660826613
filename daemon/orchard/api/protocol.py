"""Every params, result and notification type of Orchard's protocol, declared once.

camelCase on the wire (``rename="camel"``), unknown params fields refused so
a misspelt field is an error rather than silently ignored. These Structs are
the single source of ``schema/protocol.schema.json`` (``scripts/gen-schema``)
and of ``docs/protocol.md``'s field lists.

Fields a request may leave out are ``UNSET`` (absent) or have a default; in
``provider/update`` and ``model/update`` an explicit ``null`` means "clear
this setting", which is different from leaving it out.
"""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, Struct, UnsetType

from orchard.config.schema import Capability, ProviderType
from orchard.config.schema import ProviderId as ProviderIdText


class Params(Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Base of request params."""


class Result(Struct, rename="camel", omit_defaults=False):
    """Base of results and notifications."""


# -- daemon ---------------------------------------------------------------------


class Empty(Params):
    pass


class ConfigProblem(Result):
    """Where the config file is wrong, 1-based."""

    path: str
    line: int
    column: int
    message: str


class DaemonStatus(Result):
    version: str
    pid: int
    socket_path: str | None
    config_path: str
    log_path: str
    data_path: str
    revision: int
    clients: int
    uptime_seconds: float
    config_problem: ConfigProblem | None = None


class StopResult(Result):
    stopping: bool


# -- providers ------------------------------------------------------------------


class ModelInfo(Result):
    id: str
    name: str
    group: str
    capabilities: list[str]


class KeyInfo(Result):
    """One configured key, described without its value."""

    source: Literal["literal", "env", "cmd"]
    preview: str


class ApiKeyInfo(Result):
    """What a provider's API key is, never what it is set to.

    ``source`` is that of the first key (``none`` when there is no key);
    ``preview`` is at most a few characters of a literal key (``sk-…9f2c``),
    or the reference itself for ``env:``/``cmd:``.
    """

    source: Literal["none", "literal", "env", "cmd"]
    preview: str
    count: int
    keys: list[KeyInfo]


class Endpoints(Result):
    """The exact URLs requests will go to, for a live preview in a form."""

    chat: str | None
    models: str | None


class ProviderInfo(Result):
    id: str
    name: str
    type: ProviderType
    enabled: bool
    api_address: str
    api_version: str | None
    headers: dict[str, str]
    timeout: float | None
    connect_timeout: float | None
    proxy: str | None
    notes: str | None
    models: list[ModelInfo]
    api_key: ApiKeyInfo
    endpoints: Endpoints


class ProviderList(Result):
    providers: list[ProviderInfo]
    default_model: str | None
    revision: int


class ProviderId(Params):
    id: str


class ProviderResult(Result):
    provider: ProviderInfo
    revision: int


ApiKeyParam = str | list[str]


class ProviderAdd(Params):
    name: str
    type: ProviderType
    #: chosen by the client instead of derived from the name
    id: ProviderIdText | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    api_key: ApiKeyParam | UnsetType = UNSET
    api_address: str | UnsetType = UNSET
    api_version: str | UnsetType = UNSET
    headers: dict[str, str] | UnsetType = UNSET
    timeout: float | UnsetType = UNSET
    connect_timeout: float | UnsetType = UNSET
    proxy: str | UnsetType = UNSET
    notes: str | UnsetType = UNSET
    models: list[str] | UnsetType = UNSET


class ProviderUpdate(Params):
    """Change some settings; `null` clears one back to its default."""

    id: str
    revision: int | UnsetType = UNSET
    name: str | UnsetType = UNSET
    type: ProviderType | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    api_key: ApiKeyParam | None | UnsetType = UNSET
    api_address: str | None | UnsetType = UNSET
    api_version: str | None | UnsetType = UNSET
    headers: dict[str, str] | None | UnsetType = UNSET
    timeout: float | None | UnsetType = UNSET
    connect_timeout: float | None | UnsetType = UNSET
    proxy: str | None | UnsetType = UNSET
    notes: str | None | UnsetType = UNSET


class ProviderRemove(Params):
    id: str
    revision: int | UnsetType = UNSET


class Removed(Result):
    id: str
    revision: int


# -- models ---------------------------------------------------------------------


class ModelAdd(Params):
    provider_id: str
    ids: list[str]
    revision: int | UnsetType = UNSET


class ModelRemove(Params):
    provider_id: str
    ids: list[str]
    revision: int | UnsetType = UNSET


class ModelUpdate(Params):
    provider_id: str
    id: str
    name: str | None | UnsetType = UNSET
    group: str | None | UnsetType = UNSET
    capabilities: list[Capability] | None | UnsetType = UNSET
    revision: int | UnsetType = UNSET


class ModelsChanged(Result):
    provider: ProviderInfo
    #: the ids this call actually added or removed (duplicates and unknown ids are skipped)
    ids: list[str]
    revision: int


# -- notifications ----------------------------------------------------------------


class ConfigDidChange(Result):
    revision: int
    source: Literal["file", "client"]
    providers: list[str]


class ConfigDidFail(Result):
    path: str
    line: int
    column: int
    message: str


# -- check, fetch, detect -------------------------------------------------------------


class ProviderCheck(Params):
    """Check a saved provider, or values typed into a form and not saved yet."""

    provider_id: str
    model: str | UnsetType = UNSET
    api_key: ApiKeyParam | UnsetType = UNSET
    api_address: str | UnsetType = UNSET
    api_version: str | UnsetType = UNSET


class ErrorInfo(Result):
    kind: str
    message: str
    hint: str | None = None
    status: int | None = None
    #: the URL that was called (never with a query string, where keys can hide)
    url: str | None = None
    #: the provider's own words, when it said any
    provider_message: str | None = None
    #: seconds the provider asked to wait (429 Retry-After)
    retry_after: float | None = None


class KeyCheck(Result):
    preview: str
    ok: bool
    latency_ms: int | None = None
    error: ErrorInfo | None = None


class CheckResult(Result):
    """`ok` when at least one key works; `keys` has one entry per key, checked in parallel."""

    ok: bool
    latency_ms: int | None
    model: str | None
    keys: list[KeyCheck]
    error: ErrorInfo | None = None


class ModelFetch(Params):
    provider_id: str


class FetchedModel(Result):
    id: str
    name: str
    group: str
    capabilities: list[str]
    #: already in the provider's model list
    added: bool


class FetchResult(Result):
    provider_id: str
    models: list[FetchedModel]


class DetectedServer(Result):
    """A local OpenAI-compatible server that answered, ready for `provider/add`."""

    name: str
    kind: Literal["vllm", "llama.cpp", "ollama", "lm-studio"]
    api_address: str
    models: list[str]
    #: the id of a provider already using this address, if any
    provider_id: str | None = None


class DetectResult(Result):
    servers: list[DetectedServer]
    #: every address that was probed (all on 127.0.0.1)
    probed: list[str]


# -- chat -------------------------------------------------------------------------------


class ChatMessage(Params):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatParams(Params):
    """Sampling parameters; each is sent to the provider only when set."""

    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    max_tokens: int | UnsetType = UNSET


class ChatSend(Params):
    """Send the next message of a chat, or start one; the answer streams as `chat/delta`.

    `message` is the next user turn; `messages` gives several at once (or a
    whole conversation for a new chat). With `chatId` the chat's history is
    sent along; without it a new chat is created. Without `providerId` and
    `model`, the chat's last ones are used, else the config's `default_model`,
    else the first enabled provider's first model.
    """

    message: str | UnsetType = UNSET
    messages: list[ChatMessage] | UnsetType = UNSET
    chat_id: str | UnsetType = UNSET
    provider_id: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    system: str | UnsetType = UNSET
    params: ChatParams | UnsetType = UNSET


class ChatDelta(Result):
    chat_id: str
    message_id: str
    seq: int
    text: str | None = None
    reasoning: str | None = None


class TokenUsage(Result):
    input_tokens: int | None
    output_tokens: int | None


class Timings(Result):
    first_token_ms: int | None
    total_ms: int
    tokens_per_second: float | None
    #: tokens/s counted from the streamed pieces because the provider reported no usage
    estimated: bool


class ChatResult(Result):
    """The finished answer. `usage` is null when the provider reported none."""

    chat_id: str
    message_id: str
    provider_id: str
    model: str
    text: str
    reasoning: str
    finish_reason: str | None
    status: Literal["complete", "cancelled", "error"]
    usage: TokenUsage | None
    timings: Timings
    error: ErrorInfo | None = None


class ChatCancel(Params):
    chat_id: str


class ChatCancelled(Result):
    chat_id: str
    #: false when no answer was being streamed for that chat
    cancelled: bool


# -- history ------------------------------------------------------------------------------


class ChatSummary(Result):
    id: str
    title: str
    provider_id: str | None
    model: str | None
    #: unix time, seconds
    created_at: float
    updated_at: float
    message_count: int


class MessageInfo(Result):
    id: str
    role: Literal["system", "user", "assistant"]
    text: str
    reasoning: str
    #: `streaming` while the answer is arriving
    status: Literal["complete", "cancelled", "error", "streaming"]
    error: ErrorInfo | None
    provider_id: str | None
    model: str | None
    usage: TokenUsage | None
    timings: Timings | None
    finish_reason: str | None
    created_at: float


class LiveAnswer(Result):
    """The answer being streamed in a chat right now."""

    message_id: str
    seq: int


class ChatDetail(Result):
    chat: ChatSummary
    system: str | None
    messages: list[MessageInfo]
    live: LiveAnswer | None


class ChatList(Params):
    limit: int = 50
    #: only chats listed after the previous page: its `nextBefore` ...
    before: float | UnsetType = UNSET
    #: ... and its `nextBeforeId` (so chats updated at the same instant are not skipped)
    before_id: str | UnsetType = UNSET
    #: full-text search over the messages; every word must appear
    query: str | UnsetType = UNSET


class ChatListResult(Result):
    chats: list[ChatSummary]
    next_before: float | None
    next_before_id: str | None


class ChatRef(Params):
    chat_id: str


class ChatRename(Params):
    chat_id: str
    title: str


class ChatFork(Params):
    """A new chat holding the messages of `chatId` up to and including `messageId`."""

    chat_id: str
    message_id: str


class ChatAttach(Params):
    """Follow a chat: replay the live answer from `fromSeq` (exclusive), then every delta."""

    chat_id: str
    from_seq: int = 0


class ChatDeleted(Result):
    chat_id: str
    deleted: bool


class ChatDetached(Result):
    chat_id: str
    #: false: this client no longer receives the chat's deltas
    following: bool


class ChatDidUpdate(Result):
    chat_id: str
    change: Literal["created", "message", "answered", "renamed", "deleted"]


# -- usage ---------------------------------------------------------------------------------


class UsageSummaryParams(Params):
    since: float | UnsetType = UNSET
    until: float | UnsetType = UNSET
    provider_id: str | UnsetType = UNSET


class UsageTotals(Result):
    messages: int
    input_tokens: int
    output_tokens: int
    #: answers whose provider reported no usage (not counted in the sums)
    unreported: int
    provider_id: str | None = None
    model: str | None = None
    chat_id: str | None = None
    title: str | None = None


class UsageSummary(Result):
    total: UsageTotals
    providers: list[UsageTotals]
    models: list[UsageTotals]
    chats: list[UsageTotals]
