"""Check: Cherry's Check button, with empty keys allowed and every key checked on its own."""

import time

import pytest

from orchard.providers import ProviderClient, ProviderSettings
from tests.fakes import FakeProvider

GOOD = "sk-good-1111aaaa2222bbbb3333"
BAD = "sk-bad-9999zzzz8888yyyy7777"


def client(fake, type="openai", keys=("",)):
    return ProviderClient(ProviderSettings(id="local", type=type, api_address=fake.url, api_keys=keys))


@pytest.fixture
def fake():
    with FakeProvider("openai") as server:
        yield server


async def test_empty_key_is_checked_and_sends_no_auth_header(fake):
    async with client(fake) as c:
        result = await c.check("gpt2")
    assert result.ok and result.model == "gpt2" and result.latency_ms is not None
    assert [(k.index, k.preview, k.ok) for k in result.keys] == [(0, "(no key)", True)]
    sent = fake.last_request
    assert "authorization" not in sent["headers"]
    assert sent["body"]["messages"] == [{"role": "system", "content": "test"}, {"role": "user", "content": "hi"}]
    assert sent["body"]["max_tokens"] == 1 and sent["body"]["stream"] is True


async def test_check_stops_at_the_first_chunk(fake):
    fake.configure(reply="a b c d e f g h i j", chunk_delay=0.5, usage=False)
    async with client(fake) as c:
        started = time.monotonic()
        result = await c.check("gpt2")
        assert result.ok and time.monotonic() - started < 1.0
    assert await fake.wait_for_disconnect_async(2.0) is not None


async def test_every_key_is_checked_in_parallel(fake):
    fake.configure(accepted_keys=[GOOD], first_byte_delay=0.4)
    async with client(fake, keys=(BAD, GOOD, BAD + "x")) as c:
        started = time.monotonic()
        result = await c.check("gpt2")
        elapsed = time.monotonic() - started
    assert elapsed < 1.0  # three keys, 0.4 s each: in parallel
    assert result.ok and result.error is None
    assert [(k.index, k.preview, k.ok) for k in result.keys] == [
        (0, "sk-…7777", False), (1, "sk-…3333", True), (2, "sk-…777x", False)]
    assert result.keys[0].error.kind == "bad_key" and result.keys[0].error.status == 401
    assert result.latency_ms == result.keys[1].latency_ms
    assert GOOD not in repr(result) and BAD not in repr(result)


async def test_an_empty_key_refused_says_a_key_is_needed(fake):
    fake.configure(required_key=GOOD)
    async with client(fake) as c:
        result = await c.check("gpt2")
    assert result.error.kind == "bad_key" and "none is set" in result.error.message


async def test_unsaved_keys_can_be_checked(fake):
    fake.configure(accepted_keys=[GOOD])
    async with client(fake, keys=(BAD,)) as c:
        result = await c.check("gpt2", keys=[GOOD])
    assert result.ok and [k.preview for k in result.keys] == ["sk-…3333"]


async def test_no_key_works_gives_the_first_error(fake):
    fake.configure(accepted_keys=[GOOD])
    async with client(fake, keys=(BAD,)) as c:
        result = await c.check("gpt2")
    assert not result.ok and result.latency_ms is None
    assert result.error.kind == "bad_key" and "set-key local" in result.error.hint


async def test_no_model_checks_with_the_model_list(fake):
    async with client(fake) as c:
        result = await c.check()
    assert result.ok and result.model is None
    assert [r["path"] for r in fake.requests] == ["/v1/models"]


async def test_check_does_not_retry_or_fail_over(fake):
    fake.configure(status=503)
    async with client(fake, keys=(GOOD,)) as c:
        result = await c.check("gpt2")
    assert not result.ok and result.error.kind == "server_error" and len(fake.requests) == 1


async def test_check_unknown_model_and_wrong_address(fake):
    async with client(fake) as c:
        assert (await c.check("gpt-9")).error.kind == "unknown_model"
    fake.configure(html=True)
    async with client(fake) as c:
        assert (await c.check("gpt2")).error.kind == "not_an_api"


async def test_check_has_a_total_limit(fake):
    fake.configure(hang=True)
    async with client(fake) as c:
        c.check_timeout = 0.5
        started = time.monotonic()
        result = await c.check("gpt2")
    assert time.monotonic() - started < 1.5
    assert not result.ok and result.error.kind == "timeout" and result.error.hint


@pytest.mark.parametrize("type", ["anthropic", "gemini", "azure-openai"])
async def test_check_other_types(type):
    with FakeProvider(type, required_key=GOOD) as fake:
        async with client(fake, type=type, keys=(GOOD, BAD)) as c:
            result = await c.check(fake.models[0])
        assert [k.ok for k in result.keys] == [True, False] and result.ok
        assert result.keys[1].error.kind == "bad_key"


async def test_azure_check_without_a_deployment_says_how_to_add_one():
    with FakeProvider("azure-openai") as fake:
        async with client(fake, type="azure-openai") as c:
            result = await c.check()
    assert not result.ok and "orchard model add" in result.error.hint
