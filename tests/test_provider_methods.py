"""provider/* and model/*: managing providers through the daemon, as Cherry Studio's settings do."""

from __future__ import annotations

import json
import tomllib

import pytest

from tests.rpc import RawClient, RpcFailure

pytestmark = pytest.mark.asyncio

SECRET = "sk-test-0123456789abcdefSECRET9f2c"


async def test_the_vllm_example(client: RawClient, daemon) -> None:
    added = await client.request(
        "provider/add",
        {"name": "vLLM", "type": "openai", "apiKey": "", "apiAddress": "http://localhost:8000/", "models": ["gpt2"]},
    )
    pr = added["provider"]
    assert pr["id"] == "vllm"
    assert pr["enabled"] is True
    assert pr["apiKey"] == {"source": "none", "preview": "", "count": 0, "keys": []}
    assert pr["models"] == [{"id": "gpt2", "name": "gpt2", "group": "gpt2", "capabilities": ["text"]}]
    assert pr["endpoints"] == {
        "chat": "http://localhost:8000/v1/chat/completions",
        "models": "http://localhost:8000/v1/models",
    }
    on_disk = tomllib.loads(daemon.config.read_text())
    assert on_disk["providers"]["vllm"] == {
        "name": "vLLM",
        "type": "openai",
        "enabled": True,
        "api_key": "",
        "api_address": "http://localhost:8000/",
        "models": ["gpt2"],
    }
    assert daemon.config.stat().st_mode & 0o777 == 0o600
    assert daemon.config.read_text().startswith("#:schema ./config.schema.json\n")
    assert (daemon.config.parent / "config.schema.json").exists()

    listed = await client.request("provider/list")
    assert [p["id"] for p in listed["providers"]] == ["vllm"]
    assert listed["revision"] == added["revision"]


async def test_ids_are_readable_slugs_made_unique(client: RawClient) -> None:
    ids = [
        (await client.request("provider/add", {"name": name, "type": "openai"}))["provider"]["id"]
        for name in ("vLLM", "vLLM", "My OpenAI (work)", "Ōllama")
    ]
    assert ids == ["vllm", "vllm-2", "my-openai-work", "ollama"]


async def test_update_enable_disable_and_clear(client: RawClient) -> None:
    await client.request("provider/add", {"name": "Work", "type": "azure-openai"})
    pr = (
        await client.request(
            "provider/update",
            {
                "id": "work",
                "apiAddress": "https://res.openai.azure.com",
                "apiVersion": "2024-10-21",
                "enabled": False,
                "timeout": 30,
                "headers": {"X-Team": "editors"},
                "proxy": "http://user:pass@127.0.0.1:3128",
            },
        )
    )["provider"]
    assert pr["enabled"] is False and pr["apiVersion"] == "2024-10-21" and pr["timeout"] == 30
    assert pr["headers"] == {"X-Team": "editors"}
    assert "pass" not in pr["proxy"]
    pr = (await client.request("provider/update", {"id": "work", "apiVersion": None, "proxy": None}))["provider"]
    assert pr["apiVersion"] is None and pr["proxy"] is None and pr["timeout"] == 30
    pr = (await client.request("provider/update", {"id": "work", "name": "Work Azure", "enabled": True}))["provider"]
    assert pr["name"] == "Work Azure" and pr["id"] == "work" and pr["enabled"] is True


async def test_keys_never_leave_the_daemon(client: RawClient, daemon) -> None:
    await client.request("provider/add", {"name": "OpenAI", "type": "openai", "apiKey": SECRET})
    await client.request("provider/add", {"name": "Several", "type": "openai", "apiKey": [SECRET + "1", "env:WORK_KEY"]})
    await client.request(
        "provider/add", {"name": "Headers", "type": "openai", "headers": {"Authorization": f"Bearer {SECRET}"}}
    )
    everything = [
        await client.message("provider/list"),
        await client.message("provider/get", {"id": "openai"}),
        await client.message("provider/get", {"id": "several"}),
        await client.message("provider/update", {"id": "openai", "notes": "x"}),
        await client.message("daemon/status"),
    ]
    wire = json.dumps(everything)
    assert SECRET not in wire and SECRET[3:-4] not in wire
    one = everything[1]["result"]["provider"]["apiKey"]
    assert one["source"] == "literal" and one["count"] == 1
    assert one["preview"] == "sk-…9f2c"
    several = everything[2]["result"]["provider"]["apiKey"]
    assert several["count"] == 2
    assert [k["source"] for k in several["keys"]] == ["literal", "env"]
    assert several["keys"][1]["preview"] == "env:WORK_KEY"
    # ...but the file keeps it, readable only by the user, and the log never has it.
    assert SECRET in daemon.config.read_text()
    assert daemon.config.stat().st_mode & 0o077 == 0
    assert SECRET not in daemon.log.read_text()


async def test_comma_separated_keys_become_a_list(client: RawClient, daemon) -> None:
    await client.request("provider/add", {"name": "P", "type": "openai", "apiKey": "key-one, key\\,two"})
    stored = tomllib.loads(daemon.config.read_text())["providers"]["p"]["api_key"]
    assert stored == ["key-one", "key,two"]
    pr = (await client.request("provider/update", {"id": "p", "apiKey": ""}))["provider"]
    assert pr["apiKey"]["source"] == "none"  # a key can be cleared again


async def test_models_add_update_remove(client: RawClient, daemon) -> None:
    await client.request("provider/add", {"name": "OpenAI", "type": "openai"})
    r = await client.request("model/add", {"providerId": "openai", "ids": ["gpt-4o", "o3-mini", "gpt-4o", "text-embedding-3-small"]})
    assert r["ids"] == ["gpt-4o", "o3-mini", "text-embedding-3-small"]
    r = await client.request("model/add", {"providerId": "openai", "ids": ["gpt-4o"]})
    assert r["ids"] == []  # duplicates ignored
    models = {m["id"]: m for m in r["provider"]["models"]}
    assert "vision" in models["gpt-4o"]["capabilities"]
    assert "reasoning" in models["o3-mini"]["capabilities"]
    assert models["text-embedding-3-small"]["capabilities"] == ["embedding"]

    r = await client.request(
        "model/update", {"providerId": "openai", "id": "gpt-4o", "name": "GPT-4o", "group": "GPT 4", "capabilities": ["text"]}
    )
    m = next(m for m in r["provider"]["models"] if m["id"] == "gpt-4o")
    assert m == {"id": "gpt-4o", "name": "GPT-4o", "group": "GPT 4", "capabilities": ["text"]}
    on_disk = tomllib.loads(daemon.config.read_text())["providers"]["openai"]["models"]
    assert on_disk[0] == {"id": "gpt-4o", "name": "GPT-4o", "group": "GPT 4", "capabilities": ["text"]}

    r = await client.request("model/update", {"providerId": "openai", "id": "gpt-4o", "name": None, "group": None, "capabilities": None})
    assert tomllib.loads(daemon.config.read_text())["providers"]["openai"]["models"][0] == "gpt-4o"

    r = await client.request("model/remove", {"providerId": "openai", "ids": ["o3-mini", "nope"]})
    assert r["ids"] == ["o3-mini"]
    assert [m["id"] for m in r["provider"]["models"]] == ["gpt-4o", "text-embedding-3-small"]

    with pytest.raises(RpcFailure) as err:
        await client.request("model/update", {"providerId": "openai", "id": "nope", "name": "x"})
    assert err.value.code == -32004 and "nope" in err.value.message


async def test_unknown_provider_is_a_clear_error(client: RawClient) -> None:
    for method, params in [
        ("provider/get", {"id": "ghost"}),
        ("provider/update", {"id": "ghost", "name": "x"}),
        ("provider/remove", {"id": "ghost"}),
        ("model/add", {"providerId": "ghost", "ids": ["m"]}),
    ]:
        with pytest.raises(RpcFailure) as err:
            await client.request(method, params)
        assert err.value.code == -32004
        assert "ghost" in err.value.message and "orchard provider list" in err.value.data["hint"]


async def test_invalid_values_are_refused_and_nothing_is_written(client: RawClient, daemon) -> None:
    await client.request("provider/add", {"name": "A", "type": "openai"})
    before = daemon.config.read_text()
    with pytest.raises(RpcFailure) as err:
        await client.request("provider/update", {"id": "a", "apiAddress": "localhost:8000"})
    assert err.value.code == -32602 and "api_address" in err.value.message
    assert "Nothing was written" in err.value.message
    with pytest.raises(RpcFailure) as err:
        await client.request("provider/add", {"name": "  ", "type": "openai"})
    assert err.value.code == -32602
    with pytest.raises(RpcFailure) as err:
        await client.request("provider/add", {"name": "B", "type": "openai", "id": "Bad Id"})
    assert daemon.config.read_text() == before


async def test_stale_revision_is_refused(daemon) -> None:
    a, b = await daemon.client(), await daemon.client()
    try:
        rev = (await a.request("provider/add", {"name": "Shared", "type": "openai"}))["revision"]
        # Both read revision `rev`; b writes first, a's write must not overwrite it.
        await b.request("provider/update", {"id": "shared", "name": "B's name", "revision": rev})
        with pytest.raises(RpcFailure) as err:
            await a.request("provider/update", {"id": "shared", "name": "A's name", "revision": rev})
        assert err.value.code == -32010 and err.value.data["revision"] == rev + 1
        assert (await a.request("provider/get", {"id": "shared"}))["provider"]["name"] == "B's name"
        with pytest.raises(RpcFailure):
            await a.request("provider/remove", {"id": "shared", "revision": rev})
        await a.request("provider/remove", {"id": "shared", "revision": rev + 1})
    finally:
        await a.close()
        await b.close()


async def test_every_client_hears_of_a_change(daemon) -> None:
    clients = [await daemon.client() for _ in range(3)]
    try:
        r = await clients[0].request("provider/add", {"name": "vLLM", "type": "openai"})
        for c in clients:
            note = await c.notification("config/didChange")
            assert note == {"revision": r["revision"], "source": "client", "providers": ["vllm"]}
    finally:
        for c in clients:
            await c.close()


async def test_remove(client: RawClient, daemon) -> None:
    await client.request("provider/add", {"name": "A", "type": "openai"})
    await client.request("provider/add", {"name": "B", "type": "gemini"})
    r = await client.request("provider/remove", {"id": "a"})
    assert r["id"] == "a"
    assert [p["id"] for p in (await client.request("provider/list"))["providers"]] == ["b"]
    assert "[providers.a]" not in daemon.config.read_text()
