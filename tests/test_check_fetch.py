"""provider/check, model/fetch and provider/detect end to end, and the command line on top of them.

A real daemon over its socket, talking to the fake providers on 127.0.0.1:
Check must work with an empty key (local servers), report each key on its
own, use values typed into a form without saving them, and name what is
wrong (bad key, wrong address, unknown model, unreachable). Fetching models
walks every page and shows errors as errors, never as an empty list.
Detect finds local OpenAI-compatible servers and probes nothing beyond
loopback.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest

from tests.fakes.wire import AUTH, AUTH_HEADERS, AZURE_VERSION, MODELS, TYPES
from tests.rpc import RawClient, RpcFailure

pytestmark = pytest.mark.asyncio

LISTING_TYPES = ("openai", "anthropic", "gemini")  # Azure cannot list its deployments


def preview(key: str) -> str:
    return f"{key[:3]}…{key[-4:]}"


def key_for(label: str, type: str) -> str:
    return f"sk-{label}-{type.replace('-', '')}-0123456789abcdef"


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def add_provider(
    client: RawClient, type: str, address: str, *, name: str | None = None, key: Any = "",
    models: list[str] | None = None,
) -> str:
    params: dict[str, Any] = {"name": name or f"Fake {type}", "type": type, "apiKey": key, "apiAddress": address,
                              "models": [MODELS[type]] if models is None else models}
    if type == "azure-openai":
        params["apiVersion"] = AZURE_VERSION
    return (await client.request("provider/add", params))["provider"]["id"]


async def check(client: RawClient, pid: str, **extra: Any) -> dict[str, Any]:
    result = await client.request("provider/check", {"providerId": pid, **extra}, timeout=30)
    # latencyMs is an int (or null), never a float or a string.
    for value in [result["latencyMs"], *(k["latencyMs"] for k in result["keys"])]:
        assert value is None or type(value) is int, value
    return result


def sent_key(fake_type: str, request: dict[str, Any]) -> str | None:
    header, fmt = AUTH[fake_type]
    value = request["headers"].get(header)
    if value is None:
        return None
    prefix = fmt.split("{}")[0]
    assert value.startswith(prefix)
    return value[len(prefix):]


def probe_body_ok(type: str, request: dict[str, Any]) -> None:
    """Cherry's probe: system "test", user "hi", one token where the API takes a limit."""
    body = request["body"]
    assert body is not None and request["method"] == "POST"
    if type in ("openai", "azure-openai"):
        assert body["messages"] == [{"role": "system", "content": "test"}, {"role": "user", "content": "hi"}]
        assert body["stream"] is True and body["max_tokens"] == 1
    elif type == "anthropic":
        assert body["system"] == "test" and body["messages"] == [{"role": "user", "content": "hi"}]
        assert body["stream"] is True and body["max_tokens"] == 1
    else:
        assert body["systemInstruction"] == {"parts": [{"text": "test"}]}
        assert body["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
        assert body["generationConfig"] == {"maxOutputTokens": 1}


# -- Check ------------------------------------------------------------------------------------


@pytest.mark.parametrize("type", TYPES)
async def test_check_a_good_key(client: RawClient, fakes, type: str) -> None:
    key = key_for("good", type)
    fake = fakes(type, required_key=key)
    pid = await add_provider(client, type, fake.url, key=key)
    result = await check(client, pid)
    assert result["ok"] is True and result["error"] is None
    assert result["model"] == MODELS[type]
    assert isinstance(result["latencyMs"], int) and result["latencyMs"] >= 0
    assert result["keys"] == [{"preview": preview(key), "ok": True, "latencyMs": result["latencyMs"], "error": None}]
    (request,) = fake.requests
    assert sent_key(type, request) == key
    probe_body_ok(type, request)


@pytest.mark.parametrize("type", TYPES)
async def test_check_a_bad_key(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type, required_key=key_for("good", type))
    pid = await add_provider(client, type, fake.url, key=key_for("wrong", type))
    result = await check(client, pid)
    assert result["ok"] is False and result["latencyMs"] is None
    err = result["error"]
    assert err["kind"] == "bad_key"
    assert "set-key" in err["hint"] and pid in err["hint"]
    assert err["status"] in (400, 401, 403)
    (one,) = result["keys"]
    assert one["ok"] is False and one["preview"] == preview(key_for("wrong", type))
    assert one["error"]["kind"] == "bad_key" and one["latencyMs"] is None
    assert len(fake.requests) == 1  # Check does not retry


async def test_check_errors_show_the_url(client: RawClient, fakes) -> None:
    fake = fakes("openai", status=401)
    pid = await add_provider(client, "openai", fake.url)
    err = (await check(client, pid))["error"]
    url = fake.url + "/v1/chat/completions"
    assert err.get("url") == url or url in err["message"], err


@pytest.mark.parametrize("type", TYPES)
async def test_check_an_empty_key(client: RawClient, fakes, type: str) -> None:
    # The vLLM case Cherry refuses: no key, and the server wants none.
    fake = fakes(type)
    pid = await add_provider(client, type, fake.url, key="")
    result = await check(client, pid)
    assert result["ok"] is True, result["error"]
    assert result["keys"][0]["preview"] == "(no key)"
    (request,) = fake.requests
    assert not set(AUTH_HEADERS) & set(request["headers"])
    assert "key" not in request["query"]

    # The same empty key against a server that does want one: a bad_key that says so.
    fake.configure(required_key=key_for("needed", type))
    result = await check(client, pid)
    assert result["ok"] is False and result["error"]["kind"] == "bad_key"
    assert "none is set" in result["error"]["message"]


@pytest.mark.parametrize("type", [
    "openai", "anthropic",
    "gemini",
    "azure-openai",
])
async def test_check_a_wrong_address(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type)
    pid = await add_provider(client, type, fake.url + "/wrong/path")
    result = await check(client, pid)
    assert result["ok"] is False
    err = result["error"]
    assert err["kind"] == "wrong_address", err
    assert err["status"] == 404
    assert "/wrong/path" in err["hint"]  # says where the request went
    assert fake.requests[0]["path"].startswith("/wrong/path/")


@pytest.mark.parametrize("type", TYPES)
async def test_check_a_closed_port(client: RawClient, type: str) -> None:
    port = closed_port()
    pid = await add_provider(client, type, f"http://127.0.0.1:{port}")
    started = time.monotonic()
    result = await check(client, pid)
    assert time.monotonic() - started < 5
    assert result["ok"] is False
    assert result["error"]["kind"] == "unreachable"
    assert f"127.0.0.1:{port}" in result["error"]["message"]


@pytest.mark.parametrize("type", TYPES)
async def test_check_an_unknown_model(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type)
    pid = await add_provider(client, type, fake.url)
    result = await check(client, pid, model="no-such-model")
    assert result["ok"] is False and result["model"] == "no-such-model"
    assert result["error"]["kind"] == "unknown_model", result["error"]
    assert result["error"]["status"] in (400, 404)


@pytest.mark.parametrize("type", TYPES)
async def test_check_unsaved_values_without_saving_them(client: RawClient, daemon, fakes, type: str) -> None:
    unsaved = key_for("unsaved", type)
    fake = fakes(type, required_key=unsaved)
    pid = await add_provider(client, type, f"http://127.0.0.1:{closed_port()}", key=key_for("saved", type))
    before = daemon.config.read_bytes()
    saved = (await client.request("provider/get", {"id": pid}))["provider"]

    extra: dict[str, Any] = {"apiKey": unsaved, "apiAddress": fake.url}
    if type == "azure-openai":
        extra["apiVersion"] = "2024-06-01"
    result = await check(client, pid, **extra)
    assert result["ok"] is True, result["error"]
    (request,) = fake.requests
    assert sent_key(type, request) == unsaved
    if type == "azure-openai":
        assert request["query"] == {"api-version": "2024-06-01"}

    # An unsaved empty key is checked as no key at all.
    fake.configure(required_key=None)
    result = await check(client, pid, apiKey="", apiAddress=fake.url)
    assert result["ok"] is True and result["keys"][0]["preview"] == "(no key)"
    assert not set(AUTH_HEADERS) & set(fake.requests[-1]["headers"])

    # Nothing was saved.
    assert daemon.config.read_bytes() == before
    assert (await client.request("provider/get", {"id": pid}))["provider"] == saved
    # And the saved values still fail as they did.
    assert (await check(client, pid))["error"]["kind"] == "unreachable"


@pytest.mark.parametrize("type", TYPES)
async def test_check_several_keys_in_parallel(client: RawClient, fakes, type: str) -> None:
    first, bad, third = key_for("first", type), key_for("bad", type), key_for("third", type)
    fake = fakes(type, accepted_keys=[first, third], first_byte_delay=0.6)
    pid = await add_provider(client, type, fake.url, key=[first, bad, third])
    started = time.monotonic()
    result = await check(client, pid)
    elapsed = time.monotonic() - started

    assert result["ok"] is True and result["error"] is None
    assert [k["preview"] for k in result["keys"]] == [preview(first), preview(bad), preview(third)]
    assert [k["ok"] for k in result["keys"]] == [True, False, True]
    assert result["keys"][1]["error"]["kind"] == "bad_key" and result["keys"][1]["latencyMs"] is None
    assert result["keys"][0]["error"] is None and result["keys"][2]["error"] is None
    assert result["latencyMs"] == min(result["keys"][0]["latencyMs"], result["keys"][2]["latencyMs"])
    # In parallel: all three reached the server before any answer (each waits 0.6 s);
    # one after the other would take 1.8 s.
    times = [r["at"] for r in fake.requests]
    assert len(times) == 3 and max(times) - min(times) < 0.5
    assert elapsed < 1.5
    assert sorted(sent_key(type, r) for r in fake.requests) == sorted([first, bad, third])


@pytest.mark.parametrize("type", TYPES)
async def test_check_stops_at_the_first_chunk(client: RawClient, fakes, type: str) -> None:
    # A slow answer: the probe counts the first chunk and closes the stream at once. (The probe
    # asks for one token; reasoning still makes the answer several frames long.)
    fake = fakes(type, reasoning="thinking " * 20, chunk_delay=0.5)
    pid = await add_provider(client, type, fake.url)
    started = time.monotonic()
    result = await check(client, pid)
    assert result["ok"] is True, result["error"]
    assert time.monotonic() - started < 2.0  # the whole answer would take over 10 s
    gone = await fake.wait_for_disconnect_async(2.0)
    assert gone is not None and gone["stage"] == "stream" and gone["frames_sent"] <= 4


@pytest.mark.parametrize("type", LISTING_TYPES)
async def test_check_without_a_model_asks_for_the_model_list(client: RawClient, fakes, type: str) -> None:
    fake = fakes(type)
    pid = await add_provider(client, type, fake.url, models=[])
    result = await check(client, pid)
    assert result["ok"] is True and result["model"] is None
    (request,) = fake.requests
    assert request["method"] == "GET" and request["path"].endswith("/models")


# -- fetching models ---------------------------------------------------------------------------


async def test_fetch_openai_models(client: RawClient, fakes) -> None:
    key = key_for("list", "openai")
    fake = fakes("openai", models=["gpt2", "gpt-4o-mini", "text-embedding-3-small"], required_key=key)
    pid = await add_provider(client, "openai", fake.url, key=key, models=["gpt2"])
    result = await client.request("model/fetch", {"providerId": pid})
    assert result["providerId"] == pid
    models = {m["id"]: m for m in result["models"]}
    assert list(models) == ["gpt2", "gpt-4o-mini", "text-embedding-3-small"]
    assert [m["added"] for m in result["models"]] == [True, False, False]
    assert models["gpt-4o-mini"]["group"] == "gpt-4o"
    assert "vision" in models["gpt-4o-mini"]["capabilities"]
    assert models["text-embedding-3-small"]["capabilities"] == ["embedding"]
    (request,) = fake.requests
    assert (request["method"], request["path"]) == ("GET", "/v1/models")
    assert request["headers"]["authorization"] == f"Bearer {key}"


@pytest.mark.parametrize("type,cursor", [("anthropic", "after_id"), ("gemini", "pageToken")])
async def test_fetch_walks_every_page(client: RawClient, fakes, type: str, cursor: str) -> None:
    ids = [f"{'claude' if type == 'anthropic' else 'gemini'}-test-{i}" for i in range(5)]
    fake = fakes(type, models=ids, page_size=2)
    pid = await add_provider(client, type, fake.url, models=[ids[3]])
    result = await client.request("model/fetch", {"providerId": pid})
    assert [m["id"] for m in result["models"]] == ids
    assert [m["added"] for m in result["models"]] == [False, False, False, True, False]

    pages = fake.requests
    assert len(pages) == 3
    assert all(r["method"] == "GET" for r in pages)
    assert cursor not in pages[0]["query"]
    assert all(r["query"].get(cursor) for r in pages[1:])
    if type == "anthropic":
        assert [r["query"]["after_id"] for r in pages[1:]] == [ids[1], ids[3]]
        assert all(r["headers"]["anthropic-version"] == "2023-06-01" for r in pages)
        assert pages[0]["path"] == "/v1/models"
    else:
        assert pages[0]["path"] == "/v1beta/models"


async def test_fetch_gemini_strips_models_prefix_and_knows_embeddings(client: RawClient, fakes) -> None:
    fake = fakes("gemini")  # gemini-2.5-flash, gemini-2.5-pro, text-embedding-004
    pid = await add_provider(client, "gemini", fake.url)
    models = {m["id"]: m for m in (await client.request("model/fetch", {"providerId": pid}))["models"]}
    assert list(models) == ["gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004"]
    assert models["text-embedding-004"]["capabilities"] == ["embedding"]
    assert models["gemini-2.5-flash"]["name"] == "Gemini 2.5 Flash"
    assert models["gemini-2.5-flash"]["added"] is True


@pytest.mark.parametrize(
    "case,switches,kind",
    [("401", {"status": 401}, "bad_key"), ("html", {"html": True}, "not_an_api"),
     ("garbage", {"garbage": True}, "not_an_api")],
)
@pytest.mark.parametrize("type", LISTING_TYPES)
async def test_fetch_errors_are_errors_never_an_empty_list(
    client: RawClient, fakes, type: str, case: str, switches: dict, kind: str
) -> None:
    fake = fakes(type, **switches)
    pid = await add_provider(client, type, fake.url)
    msg = await client.message("model/fetch", {"providerId": pid})
    assert "result" not in msg, f"a failed fetch answered {msg['result']!r}"
    err = msg["error"]
    assert err["code"] == -32030
    assert err["data"]["kind"] == kind
    assert err["data"]["hint"]
    assert pid in err["message"]
    if case == "401":
        assert err["data"]["status"] == 401
        assert "set-key" in err["data"]["hint"]
    # Where it went, so a person can see what was asked.
    assert err["data"]["url"] == fake.url + {"openai": "/v1/models", "anthropic": "/v1/models",
                                             "gemini": "/v1beta/models"}[type]


@pytest.mark.parametrize("type", LISTING_TYPES)
async def test_fetch_with_a_key_holding_url_characters(client: RawClient, fakes, type: str) -> None:
    key = "sk-a&b=c?d#e%20f+g/h-0123456789"  # Cherry #15568: a `&` in a key broke the fetch
    fake = fakes(type, required_key=key)
    pid = await add_provider(client, type, fake.url, key=key)
    result = await client.request("model/fetch", {"providerId": pid})
    assert [m["id"] for m in result["models"]]
    assert sent_key(type, fake.requests[0]) == key


async def test_a_slow_provider_does_not_hold_up_the_others(client: RawClient, fakes) -> None:
    stuck = fakes("openai", hang=True)
    quick = fakes("anthropic")
    stuck_pid = await add_provider(client, "openai", stuck.url, name="Stuck")
    quick_pid = await add_provider(client, "anthropic", quick.url, name="Quick")
    await client.request("provider/update", {"id": stuck_pid, "timeout": 3})
    _, stuck_fetch = client.start("model/fetch", {"providerId": stuck_pid})
    await asyncio.to_thread(stuck.wait_for_requests, 1, 5.0)

    started = time.monotonic()
    fetched = await client.request("model/fetch", {"providerId": quick_pid})
    assert fetched["models"]
    assert (await check(client, quick_pid))["ok"] is True
    assert time.monotonic() - started < 2.0
    assert not stuck_fetch.done()

    msg = await asyncio.wait_for(stuck_fetch, 15)
    assert msg["error"]["data"]["kind"] == "timeout"
    assert "3 s" in msg["error"]["message"]


async def test_fetch_from_azure_explains_deployments_are_added_by_name(client: RawClient, fakes) -> None:
    fake = fakes("azure-openai")
    pid = await add_provider(client, "azure-openai", fake.url)
    with pytest.raises(RpcFailure) as err:
        await client.request("model/fetch", {"providerId": pid})
    assert err.value.code == -32020
    assert "deployments" in err.value.message and "cannot be listed" in err.value.message
    assert f"orchard model add {pid} DEPLOYMENT" in err.value.data["hint"]
    assert fake.requests == []


async def test_fetch_of_an_unknown_provider(client: RawClient) -> None:
    with pytest.raises(RpcFailure) as err:
        await client.request("model/fetch", {"providerId": "ghost"})
    assert err.value.code == -32004 and "orchard provider list" in err.value.data["hint"]


# -- detecting local servers ------------------------------------------------------------------


async def test_detect_finds_local_servers_with_their_models(daemon_process, fakes) -> None:
    vllm = fakes("openai", models=["gpt2"])
    llama = fakes("openai", models=["smollm2", "qwen2.5-0.5b"])
    stuck = fakes("openai", hang=True)  # answers nothing: must not hold detect up
    closed = closed_port()
    daemon_process.env["ORCHARD_DETECT_PORTS"] = (
        f"{vllm.port}=vllm,{llama.port}=llama.cpp,{closed}=ollama,{stuck.port}=lm-studio"
    )
    daemon_process.start()
    client = await daemon_process.client()
    try:
        # One of them is already a provider (written as people write it: localhost, /v1).
        await client.request("provider/add", {"name": "vLLM", "type": "openai",
                                              "apiAddress": f"http://localhost:{vllm.port}/v1"})
        started = time.monotonic()
        result = await client.request("provider/detect")
        assert time.monotonic() - started < 3.0
    finally:
        await client.close()

    ports = (vllm.port, llama.port, closed, stuck.port)
    assert sorted(result["probed"]) == sorted(f"http://127.0.0.1:{p}/" for p in ports)
    assert all(a.startswith("http://127.0.0.1:") for a in result["probed"])
    servers = {s["kind"]: s for s in result["servers"]}
    assert set(servers) == {"vllm", "llama.cpp"}  # nothing listed for the closed port
    assert servers["vllm"] == {"name": "vLLM", "kind": "vllm", "apiAddress": f"http://127.0.0.1:{vllm.port}/",
                               "models": ["gpt2"], "providerId": "vllm"}
    assert servers["llama.cpp"] == {"name": "llama.cpp", "kind": "llama.cpp",
                                    "apiAddress": f"http://127.0.0.1:{llama.port}/",
                                    "models": ["smollm2", "qwen2.5-0.5b"], "providerId": None}
    for fake in (vllm, llama):
        assert [(r["method"], r["path"]) for r in fake.requests] == [("GET", "/v1/models")]


async def test_detect_with_nothing_running(daemon_process) -> None:
    port = closed_port()
    daemon_process.env["ORCHARD_DETECT_PORTS"] = f"{port}=vllm"
    daemon_process.start()
    client = await daemon_process.client()
    try:
        result = await client.request("provider/detect")
    finally:
        await client.close()
    assert result == {"servers": [], "probed": [f"http://127.0.0.1:{port}/"]}


# -- the command line ---------------------------------------------------------------------------


async def cli(daemon, *args: str, input: str | None = None):
    return await asyncio.to_thread(daemon.cli, *args, input=input)


async def test_cli_check(client: RawClient, daemon, fakes) -> None:
    fake = fakes("openai")
    await add_provider(client, "openai", fake.url, name="Local")
    done = await cli(daemon, "provider", "check", "Local")
    assert done.returncode == 0, done.stderr
    assert "✓ Local answers (model gpt2) in" in done.stdout

    fake.configure(required_key=key_for("needed", "openai"))
    done = await cli(daemon, "provider", "check", "Local")
    assert done.returncode == 1
    assert "✗ Local failed the check" in done.stdout and "set-key" in done.stdout

    done = await cli(daemon, "provider", "check", "Local", "--json")
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["kind"] == "bad_key"


async def test_cli_fetch_and_add(client: RawClient, daemon, fakes) -> None:
    fake = fakes("openai", models=["gpt2", "gpt-4o-mini", "o3-mini"])
    pid = await add_provider(client, "openai", fake.url, name="Local", models=[])
    done = await cli(daemon, "model", "fetch", "Local", "--add", "gpt-4o-mini")
    assert done.returncode == 0, done.stderr
    assert "offers 3 models" in done.stdout
    assert "gpt2" in done.stdout and "o3-mini" in done.stdout
    provider = (await client.request("provider/get", {"id": pid}))["provider"]
    assert [m["id"] for m in provider["models"]] == ["gpt-4o-mini"]

    done = await cli(daemon, "model", "fetch", "Local", "--json")
    assert done.returncode == 0
    listed = json.loads(done.stdout)
    assert {m["id"]: m["added"] for m in listed["models"]} == {"gpt2": False, "gpt-4o-mini": True, "o3-mini": False}

    fake.configure(status=401)
    done = await cli(daemon, "model", "fetch", "Local")
    assert done.returncode != 0
    assert "offers" not in done.stdout  # an error, not an empty table
    assert "set-key" in done.stderr + done.stdout


async def test_cli_chat(client: RawClient, daemon, fakes) -> None:
    fake = fakes("openai")
    await add_provider(client, "openai", fake.url, name="Local")
    done = await cli(daemon, "chat", "-p", "Local", "hello")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: hello\n"
    assert "gpt2 via local" in done.stderr and "1 in / 3 out tokens" in done.stderr

    done = await cli(daemon, "chat", "-", input="a question from stdin\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "You said: a question from stdin\n"
    assert fake.requests[-1]["body"]["messages"][-1]["content"].strip() == "a question from stdin"

    fake.configure(status=401)
    done = await cli(daemon, "chat", "-p", "Local", "hello")
    assert done.returncode == 1
    assert done.stdout.strip() == ""
    assert "set-key" in done.stderr
