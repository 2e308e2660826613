"""ProviderClient against real HTTP servers on 127.0.0.1 (the fakes in tests/fakes).

Each test names one promise to the user: empty keys work, `#` is honoured,
rate limits are waited out only before the answer starts, keys fail over,
servers that refuse stream_options still work, a cancel closes the upstream
connection, and every error has a hint and never the key.
"""

import asyncio
import json
import logging
import socket
import time
from contextlib import aclosing

import msgspec
import pytest

from orchard.errors import ProviderError, ProviderUnavailable
from orchard.providers import (
    ChatRequest, Finish, Message, ProviderClient, ProviderSettings, ReasoningDelta, TextDelta, Usage,
)
from tests.fakes import FakeProvider

KEY = "sk-test-7d1e6f3a0b5c4f8a9c2b"
OTHER = "sk-test-0000aaaa1111bbbb2222"


@pytest.fixture
def fake():
    with FakeProvider("openai") as server:
        yield server


def settings(fake, *, type="openai", keys=("",), **kw):
    return ProviderSettings(id="local", type=type, api_address=kw.pop("address", fake.url), api_keys=keys, **kw)


def client(fake, **kw):
    c = ProviderClient(settings(fake, **kw))
    c.retry_delays = (0.05, 0.1, 0.2)  # the policy, not the wall clock, is under test
    return c


def req(model="gpt2", text="hello there", **kw):
    return ChatRequest(model=model, messages=[Message("user", text)], **kw)


async def collect(c, r=None):
    return [e async for e in c.chat(r or req())]


def answer(events, kind=TextDelta):
    return "".join(e.text for e in events if isinstance(e, kind))


def assert_no_secret(exc, *secrets):
    for secret in secrets:
        for text in (str(exc), repr(exc), exc.message, json.dumps(exc.to_data()), str(exc.hint)):
            assert secret not in text


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the happy paths ---------------------------------------------------------------------


async def test_chat_with_an_empty_key_sends_no_authorization(fake):
    async with client(fake) as c:
        events = await collect(c)
    assert answer(events) == "You said: hello there"
    assert events[-2:] == [Usage(2, 4), Finish("stop")]
    sent = fake.last_request
    assert "authorization" not in sent["headers"]
    assert sent["body"]["stream"] is True and sent["body"]["stream_options"] == {"include_usage": True}
    assert "temperature" not in sent["body"] and "max_tokens" not in sent["body"]


async def test_key_and_extra_headers_are_sent(fake):
    async with client(fake, keys=(KEY,), headers={"X-Team": "blue"}) as c:
        await collect(c, req(temperature=0.3, max_tokens=50))
    sent = fake.last_request
    assert sent["headers"]["authorization"] == f"Bearer {KEY}" and sent["headers"]["x-team"] == "blue"
    assert (sent["body"]["temperature"], sent["body"]["max_tokens"]) == (0.3, 50)


async def test_no_usage_from_the_server_means_no_usage_event(fake):
    fake.configure(usage=False)
    async with client(fake) as c:
        events = await collect(c)
    assert not any(isinstance(e, Usage) for e in events) and events[-1] == Finish("stop")


@pytest.mark.parametrize("style", ["field", "reasoning", "think_tags"])
async def test_reasoning_is_kept_apart(fake, style):
    fake.configure(reasoning="First, greet.", reasoning_style=style)
    async with client(fake) as c:
        events = await collect(c)
    assert answer(events, ReasoningDelta) == "First, greet."
    assert answer(events) == "You said: hello there"


async def test_hash_address_is_used_verbatim():
    with FakeProvider("gemini") as fake:
        address = f"{fake.url}/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse#"
        async with client(fake, type="gemini", address=address) as c:
            assert c.endpoints("ignored").chat == address[:-1]
            events = await collect(c, req(model="ignored"))
        assert answer(events) == "You said: hello there"
        assert fake.last_request["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent"


async def test_hash_address_openai(fake):
    async with client(fake, address=f"{fake.url}/v1/chat/completions#") as c:
        await collect(c)
        assert [m.id for m in await c.fetch_models()] == ["gpt2", "gpt-4o-mini"]
    assert [r["path"] for r in fake.requests] == ["/v1/chat/completions", "/v1/models"]


@pytest.mark.parametrize("type", ["anthropic", "gemini", "azure-openai"])
async def test_other_types_stream_with_usage(type):
    with FakeProvider(type, reasoning=True, required_key=KEY) as fake:
        model = fake.models[0]
        async with client(fake, type=type, keys=(KEY,)) as c:
            events = await collect(c, req(model=model))
        assert answer(events) == "You said: hello there"
        assert answer(events, ReasoningDelta) == "Let me think about that."
        assert isinstance(events[-2], Usage) and events[-1] == Finish("stop")


# -- retries: only before the first byte -------------------------------------------------


async def test_429_is_retried_after_retry_after(fake):
    fake.configure(status=429, retry_after=1, fail_times=1)
    async with client(fake) as c:
        started = time.monotonic()
        events = await collect(c)
    assert time.monotonic() - started >= 1.0
    assert answer(events) == "You said: hello there" and len(fake.requests) == 2


async def test_retry_after_beyond_the_cap_is_reported_not_waited(fake):
    fake.configure(status=429, retry_after=60, fail_times=1)
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "rate_limited" and err.value.data["retryAfter"] == 60
    assert "retry after 60 s" in err.value.hint and len(fake.requests) == 1


@pytest.mark.parametrize("status", [502, 503])
async def test_gateway_errors_are_retried_with_backoff(fake, status):
    fake.configure(status=status, fail_times=2)
    async with client(fake) as c:
        assert answer(await collect(c)) == "You said: hello there"
    assert len(fake.requests) == 3


async def test_at_most_two_retries(fake):
    fake.configure(status=503)
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "server_error" and len(fake.requests) == 3


async def test_500_and_400_are_not_retried(fake):
    async with client(fake) as c:
        fake.configure(status=500)
        with pytest.raises(ProviderError):
            await collect(c)
        assert len(fake.requests) == 1


async def test_nothing_is_retried_after_the_answer_began(fake):
    fake.configure(error_event_after=3)
    got = []
    async with client(fake, keys=(KEY, OTHER)) as c:
        with pytest.raises(ProviderError) as err:
            async for event in c.chat(req()):
                got.append(event)
    assert answer(got) == "You said:"  # what was yielded stays yielded
    assert err.value.kind == "server_error" and "inside its answer" in err.value.message
    assert len(fake.requests) == 1


async def test_truncated_stream_ends_early_and_keeps_the_text(fake):
    for style in ("abort", "clean"):
        fake.configure(truncate_after=3, truncate_style=style)
        got = []
        async with client(fake) as c:
            with pytest.raises(ProviderError) as err:
                async for event in c.chat(req()):
                    got.append(event)
        assert err.value.kind == "server_error" and "ended early" in err.value.message
        assert answer(got) == "You said:"
    assert len(fake.requests) == 2  # once per style: never retried


async def test_malformed_chunk(fake):
    fake.configure(malformed_after=2)
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "server_error" and "not valid JSON" in err.value.message
    fake.configure(malformed_after=0)
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "not_an_api"


# -- keys ---------------------------------------------------------------------------------


async def test_key_failover_on_401_and_round_robin(fake):
    fake.configure(accepted_keys=[OTHER])
    async with client(fake, keys=(KEY, OTHER)) as c:
        assert answer(await collect(c)) == "You said: hello there"  # KEY refused, OTHER used
        await collect(c)  # the next request starts at OTHER: its turn
    used = [r["headers"]["authorization"] for r in fake.requests]
    assert used == [f"Bearer {KEY}", f"Bearer {OTHER}", f"Bearer {OTHER}"]


async def test_key_failover_on_429_without_waiting(fake):
    fake.configure(status=429, retry_after=10, fail_keys=[KEY])
    async with client(fake, keys=(KEY, OTHER)) as c:
        started = time.monotonic()
        await collect(c)
    assert time.monotonic() - started < 1.0 and len(fake.requests) == 2


async def test_key_failover_on_an_error_event_before_any_text(fake):
    fake.configure(error_event_after=0, fail_keys=[KEY])
    async with client(fake, keys=(KEY, OTHER)) as c:
        assert answer(await collect(c)) == "You said: hello there"
    assert [r["headers"]["authorization"] for r in fake.requests] == [f"Bearer {KEY}", f"Bearer {OTHER}"]


async def test_all_keys_refused(fake):
    fake.configure(required_key="nope-nope-nope-nope", message=f"Incorrect API key provided: {KEY}")
    async with client(fake, keys=(KEY, OTHER)) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "bad_key" and "2 API keys were tried" in err.value.message
    assert "orchard provider set-key local" in err.value.hint
    assert_no_secret(err.value, KEY, OTHER)


async def test_env_key_is_resolved_again_after_401(fake, monkeypatch):
    monkeypatch.setenv("ORCHARD_FAKE_KEY", KEY)
    async with client(fake, keys=("env:ORCHARD_FAKE_KEY",)) as c:
        await collect(c)
        fake.configure(required_key=OTHER)
        monkeypatch.setenv("ORCHARD_FAKE_KEY", OTHER)  # rotated while the daemon runs
        assert answer(await collect(c)) == "You said: hello there"
    assert [r["headers"]["authorization"] for r in fake.requests] == [
        f"Bearer {KEY}", f"Bearer {KEY}", f"Bearer {OTHER}"]


async def test_missing_env_key_is_unavailable(fake, monkeypatch):
    monkeypatch.delenv("ORCHARD_NOT_SET", raising=False)
    async with client(fake, keys=("env:ORCHARD_NOT_SET",)) as c:
        with pytest.raises(ProviderUnavailable) as err:
            await collect(c)
    assert "ORCHARD_NOT_SET" in err.value.hint and not fake.requests


# -- stream_options --------------------------------------------------------------------


async def test_stream_options_refused_is_retried_once_without_and_remembered(fake):
    fake.configure(reject_stream_options=True)
    async with client(fake) as c:
        assert answer(await collect(c)) == "You said: hello there"
        await collect(c)
    assert ["stream_options" in r["body"] for r in fake.requests] == [True, False, False]


async def test_a_400_not_about_stream_options_is_reported_after_one_retry(fake):
    fake.configure(status=400, message="messages: bad role")
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
        assert err.value.kind == "bad_request" and err.value.data["providerMessage"] == "messages: bad role"
        assert c._stream_options is True  # not remembered: dropping it did not help
    assert len(fake.requests) == 2


# -- cancel and timeouts -----------------------------------------------------------------


async def test_cancel_closes_the_upstream_connection(fake):
    fake.configure(reply="one two three four five six seven eight", chunk_delay=0.3)
    first = asyncio.Event()

    async def consume(c):
        async for event in c.chat(req()):
            if isinstance(event, TextDelta):
                first.set()

    async with client(fake) as c:
        task = asyncio.create_task(consume(c))
        await asyncio.wait_for(first.wait(), 5)
        cancelled = time.time()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gone = await fake.wait_for_disconnect_async(2.0)
        assert gone is not None and gone["stage"] == "stream"
        assert gone["at"] - cancelled < 0.5
        fake.configure(chunk_delay=0.0)
        assert answer(await collect(c)) == "one two three four five six seven eight"  # still usable


async def test_aclose_closes_the_upstream_connection(fake):
    fake.configure(chunk_delay=0.3)
    async with client(fake) as c:
        async with aclosing(c.chat(req())) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    break
        assert await fake.wait_for_disconnect_async(1.0) is not None


async def test_idle_timeout(fake):
    fake.configure(chunk_delay=1.0)
    async with client(fake, timeout=0.3) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "timeout" and "0.3 s" in err.value.message and err.value.hint


async def test_slow_but_steady_stream_is_not_an_idle_timeout(fake):
    fake.configure(chunk_delay=0.15, reply="a b c d e f g h")
    async with client(fake, timeout=0.5) as c:
        assert answer(await collect(c)) == "a b c d e f g h"  # 1.5 s in all, never 0.5 s idle


# -- wrong addresses and broken servers -------------------------------------------------------


async def test_html_page_is_not_an_api(fake):
    fake.configure(html=True)
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
        assert err.value.kind == "not_an_api" and "web page" in err.value.message
        assert "/v1" in err.value.hint
        with pytest.raises(ProviderError) as err:
            await c.fetch_models()
        assert err.value.kind == "not_an_api"


async def test_garbage_is_not_an_api(fake):
    fake.configure(garbage=True)
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await c.fetch_models()
    assert err.value.kind == "not_an_api"


async def test_unreachable_port():
    port = free_port()
    c = ProviderClient(ProviderSettings(id="local", type="openai", api_address=f"http://127.0.0.1:{port}"))
    c.retry_delays = (0.01, 0.01)
    async with c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "unreachable"
    assert f"is the server running at http://127.0.0.1:{port}?" == err.value.hint


async def test_wrong_path_is_wrong_address(fake):
    async with client(fake, address=f"{fake.url}/api/v1") as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "wrong_address" and err.value.data["status"] == 404
    assert f"{fake.url}/api/v1/chat/completions" in err.value.hint


async def test_unknown_model(fake):
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c, req(model="gpt-9"))
    assert err.value.kind == "unknown_model" and "gpt-9" in err.value.message


async def test_azure_unknown_deployment():
    with FakeProvider("azure-openai") as fake:
        async with client(fake, type="azure-openai") as c:
            with pytest.raises(ProviderError) as err:
                await collect(c, req(model="nope"))
    assert err.value.kind == "unknown_model" and "deployment" in err.value.message
    assert "api-version" not in err.value.data["url"]


async def test_errors_never_contain_the_key(fake, caplog):
    caplog.set_level(logging.DEBUG)
    cases = [dict(status=401, message=f"Incorrect API key provided: {KEY}"),
             dict(status=429, message=f"slow down {KEY}", retry_after=0),
             dict(status=400, message=f"bad {KEY}"),
             dict(html=True), dict(error_event_after=0), dict(truncate_after=1)]
    for case in cases:
        fake.reset()
        fake.configure(**case)
        async with client(fake, keys=(KEY,)) as c:
            with pytest.raises(ProviderError) as err:
                await collect(c)
            assert err.value.hint, case
            assert "'local'" in err.value.message
            assert_no_secret(err.value, KEY)
            check = await c.check("gpt2")  # a truncated stream passes Check: its first chunk is fine
            assert KEY not in repr(check) and KEY not in json.dumps(msgspec.to_builtins(check))
    assert KEY not in caplog.text


# -- model lists ------------------------------------------------------------------------------


async def test_fetch_models_openai(fake):
    async with client(fake) as c:
        models = await c.fetch_models()
    assert [(m.id, m.group) for m in models] == [("gpt2", "gpt2"), ("gpt-4o-mini", "gpt-4o")]


@pytest.mark.parametrize("type", ["anthropic", "gemini"])
async def test_fetch_models_follows_pages(type):
    with FakeProvider(type, page_size=1) as fake:
        async with client(fake, type=type) as c:
            models = await c.fetch_models()
        assert [m.id for m in models] == list(fake.models)
        assert len(fake.requests) == len(fake.models)
        assert all(not m.id.startswith("models/") for m in models)


async def test_fetch_models_failure_is_an_error_not_an_empty_list(fake):
    fake.configure(status=500)
    async with client(fake) as c:
        with pytest.raises(ProviderError) as err:
            await c.fetch_models()
    assert err.value.kind == "server_error" and err.value.data["url"].endswith("/v1/models")


async def test_fetch_models_azure_says_why():
    with FakeProvider("azure-openai") as fake:
        async with client(fake, type="azure-openai") as c:
            with pytest.raises(ProviderUnavailable) as err:
                await c.fetch_models()
    assert "orchard model add local DEPLOYMENT" in err.value.hint


@pytest.mark.parametrize("bad", [f"{KEY}\nextra", f"{KEY[:10]}é{KEY[10:]}", f"{KEY[:10]} {KEY[10:]}"])
async def test_a_key_that_cannot_be_a_header_is_refused_without_quoting_it(fake, bad):
    async with client(fake, keys=(bad,)) as c:
        with pytest.raises(ProviderUnavailable) as err:
            await collect(c)
    assert "set-key local" in err.value.hint and not fake.requests
    assert_no_secret(err.value, bad, KEY[:10], KEY[10:])


async def test_an_extra_header_that_cannot_be_sent_is_not_quoted(fake):
    async with client(fake, headers={"X-Token": f"{KEY}\r\nX-Evil: 1"}) as c:
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert err.value.kind == "bad_request" and "extra headers" in err.value.hint
    assert_no_secret(err.value, KEY)


async def test_command_key_is_run_lazily_and_again_once_after_401(fake, tmp_path):
    import shlex
    import sys

    runs, keys = tmp_path / "runs", tmp_path / "keys"
    keys.write_text(f"{KEY}\n{OTHER}\n")
    # Prints KEY the first time, OTHER after: a password manager whose secret was rotated.
    code = (f"import pathlib; p = pathlib.Path({str(runs)!r}); n = len(p.read_text()) if p.exists() else 0; "
            f"p.write_text('x' * (n + 1)); print(pathlib.Path({str(keys)!r}).read_text().split()[min(n, 1)])")
    ref = "cmd:" + shlex.join([sys.executable, "-c", code])
    c = client(fake, keys=(ref,))
    assert not runs.exists()  # nothing runs before a request needs the key
    async with c:
        await collect(c)
        await collect(c)
        assert runs.read_text() == "x"  # cached
        fake.configure(required_key=OTHER)
        assert answer(await collect(c)) == "You said: hello there"
        assert runs.read_text() == "xx"
        fake.configure(required_key="something-else-entirely")
        with pytest.raises(ProviderError) as err:
            await collect(c)
    assert runs.read_text() == "xxx"  # once per failing request, not in a loop
    assert err.value.kind == "bad_key" and "cmd:" in err.value.hint
    assert_no_secret(err.value, KEY, OTHER)


async def test_https_to_a_plain_http_server_is_a_tls_error(fake):
    async with client(fake, address=f"https://127.0.0.1:{fake.port}") as c:
        with pytest.raises(ProviderError) as err:
            await c.fetch_models()
    assert err.value.kind == "tls" and "http://" in err.value.hint
