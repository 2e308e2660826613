"""chat/send and chat/cancel end to end: a real daemon, over its socket, to the fake providers.

Every test adds a provider the way a client would (`provider/add` with the
fake's URL, `model/add`), chats through the daemon, and checks both sides:
what the client received (deltas, the result) and what the fake provider
received or noticed (request bodies, headers, disconnects). Nothing is
patched: the daemon is `orchard serve` in a subprocess, the fakes are HTTP
servers on 127.0.0.1.

The fakes are deterministic (tests/fakes/answer.py): the reply is "You said:
<last user message>", one word per delta, and a token is a word — prompt
tokens count every message and the system prompt, completion tokens the
reply plus the reasoning.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes import FakeProvider
from tests.fakes.wire import AUTH, AUTH_HEADERS, AZURE_VERSION, MODELS, TYPES
from tests.rpc import RawClient, RpcFailure

pytestmark = pytest.mark.asyncio

# Stream frames each fake sends before the first piece of answer text
# (OpenAI: role chunk; Azure: prompt-filter chunk + role chunk; Anthropic:
# message_start, content_block_start, ping; Gemini: none).
LEAD_FRAMES = {"openai": 1, "azure-openai": 2, "anthropic": 3, "gemini": 0}

LONG_REPLY = " ".join(f"word{i}" for i in range(60))

# Cancel → upstream-closed latencies measured in this run (printed at the end).
LATENCIES: list[tuple[str, float]] = []


def words(text: str) -> int:
    return len(text.split())


def key_for(label: str, type: str) -> str:
    return f"sk-{label}-{type.replace('-', '')}-0123456789abcdef"


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module", autouse=True)
def _report_latencies() -> Iterator[None]:
    yield
    if LATENCIES:
        print("\ncancel → upstream disconnect latencies:")
        for label, seconds in LATENCIES:
            print(f"  {label}: {seconds * 1000:.0f} ms")


async def add_provider(
    client: RawClient, fake: FakeProvider, *, name: str | None = None, key: Any = "", with_model: bool = True,
    **extra: Any,
) -> str:
    params: dict[str, Any] = {"name": name or f"Fake {fake.type}", "type": fake.type, "apiKey": key,
                              "apiAddress": fake.url, **extra}
    if fake.type == "azure-openai":
        params.setdefault("apiVersion", AZURE_VERSION)
    pid = (await client.request("provider/add", params))["provider"]["id"]
    if with_model:
        added = await client.request("model/add", {"providerId": pid, "ids": [MODELS[fake.type]]})
        assert added["ids"] == [MODELS[fake.type]]
    return pid


def chat_params(pid: str, type: str, text: str = "hello there", **extra: Any) -> dict[str, Any]:
    return {"providerId": pid, "model": MODELS[type], "messages": [{"role": "user", "content": text}], **extra}


def deltas_of(client: RawClient) -> list[dict[str, Any]]:
    return [n["params"] for n in client.drain_notifications() if n["method"] == "chat/delta"]


async def send(client: RawClient, params: dict[str, Any], timeout: float = 30) -> tuple[dict, list[dict]]:
    """chat/send; the result and the chat/delta notifications that came before it."""
    client.drain_notifications()
    result = await client.request("chat/send", params, timeout=timeout)
    return result, deltas_of(client)


def check_deltas(result: dict[str, Any], deltas: list[dict[str, Any]]) -> None:
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert {(d["chatId"], d["messageId"]) for d in deltas} <= {(result["chatId"], result["messageId"])}
    for d in deltas:  # each delta is a piece of answer or of reasoning, never both, never empty
        assert (d["text"] is None) != (d["reasoning"] is None), d
        assert d["text"] or d["reasoning"]
    assert "".join(d["text"] or "" for d in deltas) == result["text"]
    assert "".join(d["reasoning"] or "" for d in deltas) == result["reasoning"]


def chat_requests(fake: FakeProvider) -> list[dict[str, Any]]:
    return [r for r in fake.requests if r["method"] == "POST"]


def sent_key(fake_type: str, request: dict[str, Any]) -> str | None:
    header, fmt = AUTH[fake_type]
    value = request["headers"].get(header)
    if value is None:
        return None
    prefix = fmt.split("{}")[0]
    assert value.startswith(prefix)
    return value[len(prefix):]


# -- a whole answer ---------------------------------------------------------------


@pytest.mark.parametrize("type", TYPES)
async def test_a_streamed_answer(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type, chunk_delay=0.01)
    pid = await add_provider(client, fake)
    result, deltas = await send(client, chat_params(pid, type, "hello there"))

    assert result["status"] == "complete" and result["error"] is None
    assert result["text"] == "You said: hello there"
    assert result["reasoning"] == ""
    assert result["providerId"] == pid and result["model"] == MODELS[type]
    assert result["chatId"].startswith("chat_") and result["messageId"].startswith("msg_")
    check_deltas(result, deltas)
    assert [d["text"] for d in deltas] == ["You", " said:", " hello", " there"]
    # Words are tokens: "hello there" in, "You said: hello there" out.
    assert result["usage"] == {"inputTokens": 2, "outputTokens": 4}
    assert result["finishReason"] == "stop"
    t = result["timings"]
    assert t["estimated"] is False
    assert isinstance(t["firstTokenMs"], int) and isinstance(t["totalMs"], int)
    assert 0 <= t["firstTokenMs"] <= t["totalMs"]
    assert isinstance(t["tokensPerSecond"], float) and t["tokensPerSecond"] > 0
    assert len(chat_requests(fake)) == 1


@pytest.mark.parametrize(
    "type,style",
    [("openai", "field"), ("openai", "reasoning"), ("openai", "think_tags"), ("azure-openai", "field"),
     ("anthropic", None), ("gemini", None)],
)
async def test_reasoning_is_kept_apart_from_the_answer(client: RawClient, fakes, type: str, style: str | None) -> None:
    switches: dict[str, Any] = {"reasoning": True}
    if style:
        switches["reasoning_style"] = style
    fake = fakes(type, **switches)
    pid = await add_provider(client, fake)
    result, deltas = await send(client, chat_params(pid, type, "why"))

    assert result["status"] == "complete"
    assert result["reasoning"] == "Let me think about that."
    assert result["text"] == "You said: why"
    check_deltas(result, deltas)
    kinds = ["reasoning" if d["reasoning"] else "text" for d in deltas]
    assert kinds == sorted(kinds, key=lambda k: k == "text"), "reasoning comes before the answer"
    assert kinds[0] == "reasoning" and kinds[-1] == "text"
    for d in deltas:
        assert "think" not in (d["text"] or "").lower() and "<" not in (d["text"] or "")
    # The fake counts reasoning words as output tokens (OpenAI's reasoning_tokens,
    # Gemini's thoughtsTokenCount added to candidatesTokenCount).
    assert result["usage"] == {"inputTokens": 1, "outputTokens": 3 + 5}


@pytest.mark.parametrize("type", TYPES)
async def test_no_usage_reported_is_null_and_speed_is_estimated(client: RawClient, fakes, type: str) -> None:
    # llama.cpp never sends usage while streaming, stream_options or not.
    fake = fakes(type, usage=False, chunk_delay=0.01)
    pid = await add_provider(client, fake)
    result, deltas = await send(client, chat_params(pid, type, "count my words please"))
    assert result["status"] == "complete"
    assert result["usage"] is None
    t = result["timings"]
    assert t["estimated"] is True
    assert isinstance(t["tokensPerSecond"], float) and t["tokensPerSecond"] > 0
    assert isinstance(t["firstTokenMs"], int)
    check_deltas(result, deltas)


# -- what reaches the provider -------------------------------------------------------

CONVERSATION = [
    {"role": "user", "content": "hi"},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "how are you"},
]


@pytest.mark.parametrize("type", TYPES)
async def test_conversation_system_and_params_in_the_wire_format(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type)
    pid = await add_provider(client, fake)
    model = MODELS[type]

    result, _ = await send(client, {
        "providerId": pid, "model": model, "system": "Be brief.", "messages": CONVERSATION,
        "params": {"temperature": 0.5, "topP": 0.9, "maxTokens": 50},
    })
    assert result["status"] == "complete" and result["text"] == "You said: how are you"
    # "Be brief." + "hi" + "hello" + "how are you": 7 words in.
    assert result["usage"]["inputTokens"] == 7

    # The same conversation with the system prompt as a message, and no params.
    await send(client, {"providerId": pid, "model": model,
                        "messages": [{"role": "system", "content": "Be brief."}, *CONVERSATION]})
    # And with no system prompt at all.
    await send(client, {"providerId": pid, "model": model, "messages": CONVERSATION})

    with_params, without_params, no_system = chat_requests(fake)
    bodies = [r["body"] for r in (with_params, without_params, no_system)]
    if type in ("openai", "azure-openai"):
        system = [{"role": "system", "content": "Be brief."}]
        for body in bodies:
            assert body["stream"] is True
            assert body["stream_options"] == {"include_usage": True}
            assert body["model"] == model
        assert bodies[0]["messages"] == system + CONVERSATION
        assert bodies[1]["messages"] == system + CONVERSATION
        assert bodies[2]["messages"] == CONVERSATION
        assert (bodies[0]["temperature"], bodies[0]["top_p"], bodies[0]["max_tokens"]) == (0.5, 0.9, 50)
        for body in bodies[1:]:
            assert not {"temperature", "top_p", "max_tokens", "max_completion_tokens"} & set(body)
        if type == "openai":
            assert with_params["path"] == "/v1/chat/completions"
        else:
            assert with_params["path"] == f"/openai/deployments/{model}/chat/completions"
            assert with_params["query"] == {"api-version": AZURE_VERSION}
    elif type == "anthropic":
        assert with_params["path"] == "/v1/messages"
        assert with_params["headers"]["anthropic-version"] == "2023-06-01"
        for body in bodies:
            assert body["messages"] == CONVERSATION  # no system role among the messages
            assert body["stream"] is True and body["model"] == model
        assert bodies[0]["system"] == "Be brief." and bodies[1]["system"] == "Be brief."
        assert "system" not in bodies[2]
        assert (bodies[0]["temperature"], bodies[0]["top_p"], bodies[0]["max_tokens"]) == (0.5, 0.9, 50)
        for body in bodies[1:]:
            assert body["max_tokens"] == 4096  # required by the API: a default is always sent
            assert "temperature" not in body and "top_p" not in body
    else:  # gemini
        assert with_params["path"] == f"/v1beta/models/{model}:streamGenerateContent"
        assert with_params["query"] == {"alt": "sse"}
        contents = [
            {"role": "user", "parts": [{"text": "hi"}]},
            {"role": "model", "parts": [{"text": "hello"}]},
            {"role": "user", "parts": [{"text": "how are you"}]},
        ]
        for body in bodies:
            assert body["contents"] == contents
        assert bodies[0]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert bodies[1]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert "systemInstruction" not in bodies[2]
        assert bodies[0]["generationConfig"] == {"temperature": 0.5, "topP": 0.9, "maxOutputTokens": 50}
        assert "generationConfig" not in bodies[1] and "generationConfig" not in bodies[2]


@pytest.mark.parametrize("type", TYPES)
async def test_a_chat_continued_by_id_sends_its_history(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type)
    pid = await add_provider(client, fake)
    first, _ = await send(client, {"providerId": pid, "model": MODELS[type], "system": "Be brief.",
                                   "message": "first question", "params": {"temperature": 0.25}})
    assert first["status"] == "complete"
    # The next turn names only the chat: provider, model, system prompt and params are the chat's.
    second, deltas = await send(client, {"chatId": first["chatId"], "message": "second question"})
    assert second["status"] == "complete" and second["text"] == "You said: second question"
    assert second["chatId"] == first["chatId"] and second["messageId"] != first["messageId"]
    assert (second["providerId"], second["model"]) == (pid, MODELS[type])
    check_deltas(second, deltas)
    # "Be brief." + "first question" + "You said: first question" + "second question"
    assert second["usage"]["inputTokens"] == 2 + 2 + 4 + 2

    body = chat_requests(fake)[-1]["body"]
    turns = [("user", "first question"), ("assistant", "You said: first question"), ("user", "second question")]
    if type in ("openai", "azure-openai"):
        assert body["messages"] == [{"role": "system", "content": "Be brief."}] + [
            {"role": r, "content": t} for r, t in turns]
        assert body["temperature"] == 0.25
    elif type == "anthropic":
        assert body["system"] == "Be brief." and body["temperature"] == 0.25
        assert body["messages"] == [{"role": r, "content": t} for r, t in turns]
    else:
        assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
        assert body["generationConfig"] == {"temperature": 0.25}
        assert body["contents"] == [{"role": "model" if r == "assistant" else "user", "parts": [{"text": t}]}
                                    for r, t in turns]


@pytest.mark.parametrize("type", TYPES)
async def test_max_tokens_cuts_the_answer_with_finish_reason_length(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type)
    pid = await add_provider(client, fake)
    result, deltas = await send(client, chat_params(pid, type, "one two three four", params={"maxTokens": 2}))
    assert result["status"] == "complete"
    assert result["text"] == "You said:"
    assert result["finishReason"] == "length"
    assert result["usage"] == {"inputTokens": 4, "outputTokens": 2}
    check_deltas(result, deltas)


@pytest.mark.parametrize("type", TYPES)
async def test_auth_header_only_with_a_key(client: RawClient, fakes, type: str) -> None:
    key = "sk-orchard-test-" + type.replace("-", "") + "-0123456789abcdef"
    fake = fakes(type)
    pid = await add_provider(client, fake, key="")
    result, _ = await send(client, chat_params(pid, type))
    assert result["status"] == "complete"
    (request,) = chat_requests(fake)
    assert not set(AUTH_HEADERS) & set(request["headers"]), request["headers"]
    assert "key" not in request["query"]

    fake.configure(required_key=key)
    await client.request("provider/update", {"id": pid, "apiKey": key})
    result, _ = await send(client, chat_params(pid, type))
    assert result["status"] == "complete", result["error"]
    header, fmt = AUTH[type]
    request = chat_requests(fake)[-1]
    assert request["headers"][header] == fmt.format(key)
    assert not (set(AUTH_HEADERS) - {header}) & set(request["headers"])


@pytest.mark.parametrize("type", TYPES)
async def test_a_verbatim_address_ending_in_hash(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type)
    model = MODELS[type]
    endpoint = {
        "openai": "/v1/chat/completions",
        "anthropic": "/v1/messages",
        "gemini": "/v1beta/models/{model}:streamGenerateContent?alt=sse",
        "azure-openai": f"/openai/deployments/{model}/chat/completions?api-version={AZURE_VERSION}",
    }[type]
    pid = await add_provider(client, fake, apiAddress=fake.url + endpoint + "#")
    result, _ = await send(client, chat_params(pid, type))
    assert result["status"] == "complete", result["error"]
    (request,) = chat_requests(fake)
    assert request["path"] == endpoint.split("?")[0].replace("{model}", model)


async def test_settings_changed_mid_stream_leave_the_answer_alone(client: RawClient, fakes) -> None:
    fake = fakes("openai", reply="one two three four five six seven eight", chunk_delay=0.05)
    pid = await add_provider(client, fake)
    client.drain_notifications()
    _, future = client.start("chat/send", chat_params(pid, "openai"))
    await client.notification("chat/delta")
    # A save in the settings page retires the provider's HTTP client while it streams.
    await client.request("provider/update", {"id": pid, "notes": "edited", "timeout": 30})
    result = (await asyncio.wait_for(future, 10))["result"]
    assert result["status"] == "complete", result["error"]
    assert result["text"] == "one two three four five six seven eight"
    assert fake.disconnects == []
    # And the next chat goes through the rebuilt client.
    assert (await send(client, chat_params(pid, "openai")))[0]["status"] == "complete"


# -- cancelling --------------------------------------------------------------------------


async def _start_slow_chat(client: RawClient, fakes, type: str) -> tuple[FakeProvider, int, asyncio.Future, dict]:
    fake = fakes(type, reply=LONG_REPLY, chunk_delay=0.1)
    pid = await add_provider(client, fake)
    client.drain_notifications()
    req_id, future = client.start("chat/send", chat_params(pid, type))
    first = await client.notification("chat/delta", timeout=10)
    assert first["seq"] == 1
    return fake, req_id, future, first


async def _check_cancelled(client: RawClient, fake: FakeProvider, future: asyncio.Future, first: dict,
                           cancelled_at: float, label: str) -> None:
    gone = await fake.wait_for_disconnect_async(5.0)
    assert gone is not None, "the daemon never closed the upstream request"
    latency = gone["at"] - cancelled_at
    LATENCIES.append((label, latency))
    print(f"\n{label}: cancel → upstream disconnect {latency * 1000:.0f} ms")
    assert gone["stage"] == "stream"
    assert latency < 1.0, f"the upstream request stayed open {latency:.3f} s after the cancel"

    msg = await asyncio.wait_for(future, 10)
    assert "result" in msg, msg
    result = msg["result"]
    assert result["status"] == "cancelled"
    assert result["error"] is None
    assert result["chatId"] == first["chatId"]
    # The partial answer is kept: what was streamed before the cancel, no more.
    assert result["text"] and LONG_REPLY.startswith(result["text"]) and result["text"] != LONG_REPLY
    check_deltas(result, [first, *deltas_of(client)])
    # It stops there: the fake sent only a few frames of the 60-word answer.
    assert gone["frames_sent"] < 30


@pytest.mark.parametrize("type", TYPES)
async def test_cancel_request_closes_the_upstream_and_keeps_the_partial_text(
    client: RawClient, fakes, type: str
) -> None:
    fake, req_id, future, first = await _start_slow_chat(client, fakes, type)
    cancelled_at = time.time()
    client.cancel(req_id)
    await _check_cancelled(client, fake, future, first, cancelled_at, f"$/cancelRequest {type}")


@pytest.mark.parametrize("type", TYPES)
async def test_chat_cancel_from_another_client(client: RawClient, daemon, fakes, type: str) -> None:
    fake, req_id, future, first = await _start_slow_chat(client, fakes, type)
    other = await daemon.client()
    try:
        cancelled_at = time.time()
        answer = await other.request("chat/cancel", {"chatId": first["chatId"]})
        assert answer == {"chatId": first["chatId"], "cancelled": True}
        await _check_cancelled(client, fake, future, first, cancelled_at, f"chat/cancel {type}")
        # Nothing left to cancel now.
        again = await other.request("chat/cancel", {"chatId": first["chatId"]})
        assert again == {"chatId": first["chatId"], "cancelled": False}
        # The cancelling client never saw the other client's deltas.
        assert not [n for n in other.drain_notifications() if n["method"] == "chat/delta"]
    finally:
        await other.close()


@pytest.mark.parametrize("how", ("$/cancelRequest", "chat/cancel"))
async def test_cancel_before_the_first_token(client: RawClient, daemon, fakes, how: str) -> None:
    fake = fakes("anthropic", first_byte_delay=10.0)
    pid = await add_provider(client, fake)
    client.drain_notifications()
    req_id, future = client.start("chat/send", chat_params(pid, "anthropic"))
    await asyncio.to_thread(fake.wait_for_requests, 1, 5.0)
    if how == "$/cancelRequest":
        cancelled_at = time.time()
        client.cancel(req_id)
    else:
        # No delta has come to read the chat id from: another window finds it in the history.
        other = await daemon.client()
        try:
            chat_id = (await other.request("chat/list", {}))["chats"][0]["id"]
            cancelled_at = time.time()
            assert (await other.request("chat/cancel", {"chatId": chat_id}))["cancelled"] is True
        finally:
            await other.close()
    gone = await fake.wait_for_disconnect_async(5.0)
    assert gone is not None and gone["stage"] == "before first byte"
    LATENCIES.append((f"{how} before the first token", gone["at"] - cancelled_at))
    assert gone["at"] - cancelled_at < 1.0
    result = (await asyncio.wait_for(future, 5))["result"]
    assert result["status"] == "cancelled" and result["text"] == "" and result["error"] is None
    assert result["timings"]["firstTokenMs"] is None
    assert deltas_of(client) == []


async def test_cancel_stops_a_retry_that_is_waiting(client: RawClient, fakes) -> None:
    # Retry-After: 10 s, under the 20 s cap, so the daemon waits before asking again.
    fake = fakes("openai", status=503, retry_after=10.0, fail_times=3)
    pid = await add_provider(client, fake)
    req_id, future = client.start("chat/send", chat_params(pid, "openai"))
    await asyncio.to_thread(fake.wait_for_requests, 1, 5.0)
    started = time.monotonic()
    client.cancel(req_id)
    result = (await asyncio.wait_for(future, 5))["result"]
    assert time.monotonic() - started < 1.0
    assert result["status"] == "cancelled" and result["text"] == ""
    assert len(chat_requests(fake)) == 1  # no retry after the cancel


async def test_cancel_of_an_unknown_chat_is_false(client: RawClient) -> None:
    assert await client.request("chat/cancel", {"chatId": "chat_nope"}) == {"chatId": "chat_nope", "cancelled": False}


# -- failures, as a result with status "error" ------------------------------------------------


def _error_switches(case: str, type: str) -> dict[str, Any]:
    lead = LEAD_FRAMES[type]
    return {
        "401": {"status": 401},
        "429": {"status": 429, "retry_after": 0.1, "fail_times": 5},
        "500": {"status": 500},
        "html": {"html": True},
        "garbage": {"garbage": True},
        "truncate": {"truncate_after": lead + 2, "chunk_delay": 0.01},
        "truncate_clean": {"truncate_after": lead + 2, "truncate_style": "clean"},
        "error_event": {"error_event_after": lead + 2},
        "malformed": {"malformed_after": lead + 2},
    }[case]


# case: (kind, HTTP status in the error, chat requests the fake saw, partial text kept)
ERROR_CASES = {
    "401": ("bad_key", 401, 1, ""),
    "429": ("rate_limited", 429, 3, ""),  # retried twice, honouring Retry-After
    "500": ("server_error", 500, 1, ""),
    "html": ("not_an_api", 200, 1, ""),
    "garbage": ("not_an_api", 200, 1, ""),
    "truncate": ("server_error", None, 1, "You said:"),
    "truncate_clean": ("server_error", None, 1, "You said:"),
    "error_event": ("server_error", 200, 1, "You said:"),
    "malformed": ("server_error", None, 1, "You said:"),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
@pytest.mark.parametrize("type", TYPES)
async def test_provider_failures_are_results_with_an_error(client: RawClient, fakes, type: str, case: str) -> None:
    kind, status, attempts, partial = ERROR_CASES[case]
    fake = fakes(type, **_error_switches(case, type))
    pid = await add_provider(client, fake)
    result, deltas = await send(client, chat_params(pid, type, "hello there"))

    assert result["status"] == "error", result
    err = result["error"]
    assert err["kind"] == kind, err
    assert err["status"] == status
    assert pid in err["message"]
    assert err["hint"]
    assert result["text"] == partial
    check_deltas(result, deltas)
    assert result["usage"] is None and result["finishReason"] is None
    assert len(chat_requests(fake)) == attempts
    if case == "429":
        assert "0.1" in err["hint"]


CHAT_PATHS = {
    "openai": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
    "azure-openai": "/openai/deployments/gpt-4o-mini/chat/completions",
}


@pytest.mark.parametrize("type", TYPES)
async def test_an_error_shows_status_url_and_the_providers_words(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type, status=401, message="Your key was revoked on Tuesday")
    pid = await add_provider(client, fake)
    result, _ = await send(client, chat_params(pid, type))
    err = result["error"]
    assert err["status"] == 401
    assert "Your key was revoked on Tuesday" in err["message"]
    assert err["providerMessage"] == "Your key was revoked on Tuesday"
    url = fake.url + CHAT_PATHS[type]
    assert err.get("url") == url or url in err["message"], err


@pytest.mark.parametrize("type", TYPES)
async def test_a_long_retry_after_is_reported_not_waited_for(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type, status=429, retry_after=60.0)
    pid = await add_provider(client, fake)
    started = time.monotonic()
    result, _ = await send(client, chat_params(pid, type))
    assert time.monotonic() - started < 2.0
    assert result["status"] == "error" and result["error"]["kind"] == "rate_limited"
    assert "60" in result["error"]["hint"]
    assert len(chat_requests(fake)) == 1


@pytest.mark.parametrize("type", TYPES)
async def test_silence_longer_than_the_timeout_is_a_timeout(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type)
    pid = await add_provider(client, fake)
    # Used once with the default timeout, so the new one must apply without a restart.
    assert (await send(client, chat_params(pid, type)))[0]["status"] == "complete"
    fake.configure(hang=True)
    await client.request("provider/update", {"id": pid, "timeout": 0.5})
    started = time.monotonic()
    result, _ = await send(client, chat_params(pid, type))
    elapsed = time.monotonic() - started
    assert result["status"] == "error"
    assert result["error"]["kind"] == "timeout"
    assert "0.5" in result["error"]["message"]
    assert 0.4 < elapsed < 5
    # And the hung request was closed, not left open.
    assert await fake.wait_for_disconnect_async(2.0) is not None


async def test_the_timeout_is_idle_time_not_total_time(client: RawClient, fakes) -> None:
    fake = fakes("openai", reply="one two three four five six seven eight", chunk_delay=0.2)
    pid = await add_provider(client, fake)
    await client.request("provider/update", {"id": pid, "timeout": 0.6})
    result, _ = await send(client, chat_params(pid, "openai"))
    assert result["status"] == "complete", result["error"]
    assert result["timings"]["totalMs"] > 1000  # well over the timeout, yet never idle that long


@pytest.mark.parametrize("type", TYPES)
async def test_unreachable_server(client: RawClient, type: str) -> None:
    params: dict[str, Any] = {"name": "Gone", "type": type, "apiAddress": f"http://127.0.0.1:{closed_port()}",
                              "models": [MODELS[type]]}
    if type == "azure-openai":
        params["apiVersion"] = AZURE_VERSION
    pid = (await client.request("provider/add", params))["provider"]["id"]
    result, deltas = await send(client, chat_params(pid, type))
    assert result["status"] == "error"
    assert result["error"]["kind"] == "unreachable"
    assert "127.0.0.1" in result["error"]["message"]
    assert result["text"] == "" and deltas == []


@pytest.mark.parametrize("type", TYPES)
async def test_a_passing_503_is_retried(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type, status=503, fail_times=1)
    pid = await add_provider(client, fake)
    result, _ = await send(client, chat_params(pid, type))
    assert result["status"] == "complete", result["error"]
    assert result["text"] == "You said: hello there"
    assert len(chat_requests(fake)) == 2


@pytest.mark.parametrize("type", ("openai", "azure-openai"))
async def test_a_server_refusing_stream_options_is_asked_again_without(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type, reject_stream_options=True)
    pid = await add_provider(client, fake)
    result, _ = await send(client, chat_params(pid, type))
    assert result["status"] == "complete", result["error"]
    assert result["text"] == "You said: hello there"
    first, second = chat_requests(fake)
    assert "stream_options" in first["body"] and "stream_options" not in second["body"]
    # Without include_usage the server sends no usage: null, not zeros.
    assert result["usage"] is None and result["timings"]["estimated"] is True
    # Remembered: the next chat does not try again.
    result, _ = await send(client, chat_params(pid, type))
    assert result["status"] == "complete"
    assert len(chat_requests(fake)) == 3
    assert "stream_options" not in chat_requests(fake)[-1]["body"]


# -- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize("type", TYPES)
async def test_a_refused_key_fails_over_to_the_next_and_no_key_leaks(
    client: RawClient, daemon, fakes, type: str
) -> None:
    bad = f"sk-BADKEY-{type}-7c1e0a93d5b2f8461e0a"
    good = f"sk-GOODKEY-{type}-4f9b2c7d1e0a3b5c6d7e"
    fake = fakes(type, required_key=good)
    received: list[dict[str, Any]] = []

    params: dict[str, Any] = {"name": "Two keys", "type": type, "apiKey": [bad, good], "apiAddress": fake.url,
                              "models": [MODELS[type]]}
    if type == "azure-openai":
        params["apiVersion"] = AZURE_VERSION
    msg = await client.message("provider/add", params)
    received.append(msg)
    pid = msg["result"]["provider"]["id"]
    msg = await client.message("chat/send", chat_params(pid, type), timeout=30)
    received.append(msg)
    received += client.drain_notifications()
    received.append(await client.message("provider/get", {"id": pid}))

    result = msg["result"]
    assert result["status"] == "complete", result["error"]
    assert result["text"] == "You said: hello there"
    assert [sent_key(type, r) for r in chat_requests(fake)] == [bad, good]

    wire = json.dumps(received)
    log = daemon.log.read_text()
    for key in (bad, good):
        for where, text in (("the JSON the client received", wire), ("the daemon log", log)):
            assert key not in text, f"a key appears in {where}"
            assert key[3:-4] not in text, f"most of a key appears in {where}"


@pytest.mark.parametrize("type", TYPES)
async def test_a_rate_limited_key_fails_over_to_the_next(client: RawClient, fakes, type: str) -> None:
    limited, spare = key_for("limited", type), key_for("spare", type)
    fake = fakes(type, status=429, fail_keys=[limited])
    pid = await add_provider(client, fake, key=[limited, spare])
    result, _ = await send(client, chat_params(pid, type))
    assert result["status"] == "complete", result["error"]
    assert [sent_key(type, r) for r in chat_requests(fake)] == [limited, spare]


@pytest.mark.parametrize("type", TYPES)
async def test_a_key_echoed_in_an_error_is_scrubbed(client: RawClient, daemon, fakes, type: str) -> None:
    key = f"sk-echoed-{type}-9a8b7c6d5e4f3a2b1c0d"
    fake = fakes(type, status=401, message=f"Incorrect API key provided: {key}. Find yours at example.com")
    pid = await add_provider(client, fake, key=key)
    client.drain_notifications()
    msg = await client.message("chat/send", chat_params(pid, type))
    result = msg["result"]
    assert result["status"] == "error" and result["error"]["kind"] == "bad_key"
    assert "Incorrect API key provided" in result["error"]["message"]  # the provider's own words...
    wire = json.dumps([msg, *client.drain_notifications()])
    assert key not in wire and key[3:-4] not in wire  # ...without the key
    assert key not in daemon.log.read_text()


@pytest.mark.parametrize("type", TYPES)
async def test_an_error_event_before_any_text_fails_over_to_the_next_key(client: RawClient, fakes, type: str) -> None:
    first_key = f"sk-first-{type}-0123456789abcdefgh"
    second_key = f"sk-second-{type}-0123456789abcdefgh"
    fake = fakes(type, error_event_after=0, fail_keys=[first_key])
    pid = await add_provider(client, fake, key=[first_key, second_key])
    result, deltas = await send(client, chat_params(pid, type))
    assert result["status"] == "complete", result["error"]
    assert result["text"] == "You said: hello there"
    assert [sent_key(type, r) for r in chat_requests(fake)] == [first_key, second_key]
    check_deltas(result, deltas)


async def test_keys_from_the_environment_and_from_a_command(daemon_process, fakes, tmp_path) -> None:
    env_key = "sk-from-env-0123456789abcdefghij"
    old_key, new_key = "sk-cmd-old-0123456789abcdefghij", "sk-cmd-new-0123456789abcdefghij"
    key_file = tmp_path / "key.txt"
    key_file.write_text(old_key + "\n")
    daemon_process.env["ORCHARD_TEST_KEY"] = env_key
    daemon_process.start()
    client = await daemon_process.client()
    try:
        from_env = fakes("openai", required_key=env_key)
        from_cmd = fakes("anthropic", required_key=old_key)
        env_pid = await add_provider(client, from_env, key="env:ORCHARD_TEST_KEY")
        cmd_pid = await add_provider(client, from_cmd, key=f"cmd:cat {key_file}")
        received = [await client.message("provider/get", {"id": cmd_pid})]

        result, deltas = await send(client, chat_params(env_pid, "openai"))
        assert result["status"] == "complete", result["error"]
        assert sent_key("openai", chat_requests(from_env)[0]) == env_key

        result, _ = await send(client, chat_params(cmd_pid, "anthropic"))
        assert result["status"] == "complete", result["error"]
        # The password manager rotated the key: the cached one gets a 401, the command runs again.
        key_file.write_text(new_key + "\n")
        from_cmd.configure(required_key=new_key)
        result, _ = await send(client, chat_params(cmd_pid, "anthropic"))
        assert result["status"] == "complete", result["error"]
        assert [sent_key("anthropic", r) for r in chat_requests(from_cmd)] == [old_key, old_key, new_key]

        wire = json.dumps([*received, result, deltas])
        log = daemon_process.log.read_text()
        for key in (env_key, old_key, new_key):
            assert key not in wire and key not in log
    finally:
        await client.close()


async def test_keys_rotate_round_robin_per_request(client: RawClient, fakes) -> None:
    keys = [f"sk-rotate-{i}-0123456789abcdefghij" for i in range(3)]
    fake = fakes("openai")
    pid = await add_provider(client, fake, key=keys)
    for _ in range(4):
        result, _ = await send(client, chat_params(pid, "openai"))
        assert result["status"] == "complete"
    assert [sent_key("openai", r) for r in chat_requests(fake)] == [keys[0], keys[1], keys[2], keys[0]]


# -- refused before anything is sent: JSON-RPC errors with a hint ---------------------------------


async def test_refusals_name_the_command_to_run(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake, name="Local")
    empty = (await client.request("provider/add", {"name": "Empty", "type": "openai", "apiAddress": fake.url}))[
        "provider"]["id"]
    messages = [{"role": "user", "content": "hi"}]

    async def refused(params: dict[str, Any]) -> RpcFailure:
        with pytest.raises(RpcFailure) as err:
            await client.request("chat/send", params)
        return err.value

    err = await refused({"providerId": "ghost", "model": "gpt2", "messages": messages})
    assert err.code == -32004 and err.data["kind"] == "not_found"
    assert "ghost" in err.message and "orchard provider list" in err.data["hint"]

    err = await refused({"providerId": pid, "model": "gpt-9", "messages": messages})
    assert err.code == -32004 and "gpt-9" in err.message
    assert f"orchard model add {pid} gpt-9" in err.data["hint"]

    err = await refused({"providerId": empty, "messages": messages})
    assert err.code == -32020 and err.data["kind"] == "provider_unavailable"
    assert f"orchard model add {empty}" in err.data["hint"]

    await client.request("provider/update", {"id": pid, "enabled": False})
    err = await refused({"providerId": pid, "model": "gpt2", "messages": messages})
    assert err.code == -32020 and "switched off" in err.message
    assert f"orchard provider enable {pid}" in err.data["hint"]

    # With nothing usable, a chat that names no provider says how to add one.
    err = await refused({"messages": messages})
    assert err.code == -32020 and "orchard provider add" in err.data["hint"]

    assert chat_requests(fake) == []  # none of these reached the provider


async def test_without_a_provider_the_first_ready_one_is_used(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    result, _ = await send(client, {"messages": [{"role": "user", "content": "hi"}]})
    assert result["status"] == "complete"
    assert (result["providerId"], result["model"]) == (pid, "gpt2")


# -- clients that leave --------------------------------------------------------------------------


async def test_a_client_leaving_mid_stream_closes_the_upstream_and_others_carry_on(daemon, fakes) -> None:
    fake = fakes("openai", reply=LONG_REPLY, chunk_delay=0.05)
    stayer, leaver = await daemon.client(), await daemon.client()
    try:
        pid = await add_provider(stayer, fake)
        stayer.drain_notifications()
        _, staying = stayer.start("chat/send", chat_params(pid, "openai", "from the stayer"))
        await stayer.notification("chat/delta")
        _, _leaving = leaver.start("chat/send", chat_params(pid, "openai", "from the leaver"))
        await leaver.notification("chat/delta")

        left_at = time.time()
        await leaver.close()
        gone = await fake.wait_for_disconnect_async(5.0)
        assert gone is not None, "the daemon kept streaming for a client that left"
        latency = gone["at"] - left_at
        LATENCIES.append(("client left mid-stream", latency))
        print(f"\nclient left mid-stream → upstream disconnect {latency * 1000:.0f} ms")
        assert latency < 1.0
        leaver_request = next(r for r in fake.requests if "from the leaver" in r["body_text"])
        assert gone["request_index"] == leaver_request["index"]

        # The other client's answer goes on to the end, and it can still ask things.
        result = (await asyncio.wait_for(staying, 30))["result"]
        assert result["status"] == "complete" and result["text"] == LONG_REPLY
        assert len(fake.disconnects) == 1
        listed = await stayer.request("provider/list")
        assert [p["id"] for p in listed["providers"]] == [pid]
        fake.configure(reply=None, chunk_delay=0.0)
        result, _ = await send(stayer, chat_params(pid, "openai", "still here"))
        assert result["status"] == "complete" and result["text"] == "You said: still here"
    finally:
        await stayer.close()
        await leaver.close()


async def test_a_client_leaving_before_the_first_token_closes_the_upstream(daemon, fakes) -> None:
    fake = fakes("openai", first_byte_delay=5.0)
    leaver = await daemon.client()
    try:
        pid = await add_provider(leaver, fake)
        leaver.start("chat/send", chat_params(pid, "openai"))
        await asyncio.to_thread(fake.wait_for_requests, 1, 5.0)
        left_at = time.time()
    finally:
        await leaver.close()
    gone = await fake.wait_for_disconnect_async(3.0)
    assert gone is not None, "the upstream request stayed open after its client left"
    assert gone["at"] - left_at < 1.0


async def test_a_rate_limit_says_how_long_to_wait(client: RawClient, fakes) -> None:
    # Longer than the client waits by itself (20 s), so it is reported, not waited for.
    fake = fakes("openai", status=429, retry_after=120)
    pid = await add_provider(client, fake)
    result, _ = await send(client, chat_params(pid, "openai"))
    err = result["error"]
    assert err["kind"] == "rate_limited" and err["status"] == 429
    assert err["retryAfter"] == 120
    stored = await client.request("chat/get", {"chatId": result["chatId"]})
    assert stored["messages"][-1]["error"]["retryAfter"] == 120
