"""The wire: JSON-RPC 2.0 over Content-Length frames, and every kind of bad input.

Each bad input gets a JSON-RPC error (or, for a frame that cannot be read, a
closed connection after an explanatory error), and the daemon goes on
serving the same client where possible and every other client always.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.rpc import RawClient, RpcFailure

pytestmark = pytest.mark.asyncio


async def test_status_answers_with_the_documented_fields(client: RawClient, daemon) -> None:
    msg = await client.message("daemon/status")
    assert msg["jsonrpc"] == "2.0" and msg["id"] == 1
    st = msg["result"]
    assert st["pid"] == daemon.proc.pid
    assert st["socketPath"] == str(daemon.socket)
    assert st["configPath"] == str(daemon.config)
    assert st["revision"] >= 1
    assert st["clients"] == 1
    assert st["uptimeSeconds"] >= 0
    assert st["logPath"].endswith("daemon.log")


async def test_request_without_params_is_answered(client: RawClient) -> None:
    # vscode-jsonrpc and Neovim omit `params` when there are none.
    msg = await client.message("provider/list", omit_params=True)
    assert msg["result"]["providers"] == []


async def test_null_params_are_empty_params(client: RawClient) -> None:
    client.send({"jsonrpc": "2.0", "id": "a", "method": "provider/list", "params": None})
    body = await asyncio.wait_for(_next_unmatched(client), 5)
    assert body["id"] == "a" and "result" in body


async def _next_unmatched(client: RawClient) -> dict:
    while not client.unmatched:
        await asyncio.sleep(0.01)
    return client.unmatched.pop(0)


async def test_unknown_method(client: RawClient) -> None:
    msg = await client.message("provider/frobnicate")
    assert msg["error"]["code"] == -32601
    assert "provider/frobnicate" in msg["error"]["message"]


async def test_invalid_params_name_the_field(client: RawClient) -> None:
    with pytest.raises(RpcFailure) as err:
        await client.request("provider/add", {"name": 42, "type": "openai"})
    assert err.value.code == -32602
    assert "params.name" in err.value.message
    assert err.value.data["field"] == "name"

    with pytest.raises(RpcFailure) as err:
        await client.request("provider/add", {"name": "x", "type": "openai", "colour": "red"})
    assert err.value.code == -32602 and "colour" in err.value.message
    assert err.value.data["field"] == "colour"

    # A member of a nested object is named with its path, not by its parent.
    with pytest.raises(RpcFailure) as err:
        await client.request("chat/send", {"message": "hi", "params": {"temprature": 0.2}})
    assert err.value.code == -32602 and err.value.data["field"] == "params.temprature"

    with pytest.raises(RpcFailure) as err:
        await client.request("provider/add", {"name": "x", "type": "cohere"})
    assert err.value.code == -32602 and "params.type" in err.value.message

    with pytest.raises(RpcFailure) as err:
        await client.request("provider/get", {})
    assert err.value.code == -32602 and "id" in err.value.message
    assert err.value.data["field"] == "id"

    with pytest.raises(RpcFailure) as err:
        await client.request("provider/get", [1, 2])
    assert err.value.code == -32602


async def test_bad_json_is_a_parse_error_and_the_connection_lives_on(client: RawClient) -> None:
    body = b'{"jsonrpc": "2.0", "id": 1, "method": '
    client.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    err = await asyncio.wait_for(_next_unmatched(client), 5)
    assert err["id"] is None and err["error"]["code"] == -32700
    assert (await client.request("daemon/status"))["pid"]


async def test_invalid_utf8_is_a_parse_error(client: RawClient) -> None:
    body = b'{"jsonrpc": "2.0", "id": 7, "method": "provider/get", "params": {"id": "\xff\xfe"}}'
    client.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    err = await asyncio.wait_for(_next_unmatched(client), 5)
    assert err["error"]["code"] == -32700 and "UTF-8" in err["error"]["message"]
    assert (await client.request("daemon/status"))["pid"]


@pytest.mark.parametrize(
    "payload, code",
    [
        ([{"jsonrpc": "2.0", "id": 1, "method": "daemon/status"}], -32600),  # batch
        ({"jsonrpc": "1.0", "id": 1, "method": "daemon/status"}, -32600),
        ({"jsonrpc": "2.0", "id": 1.5, "method": "daemon/status"}, -32600),
        ({"jsonrpc": "2.0", "id": 1}, -32600),
        ("hello", -32600),
    ],
)
async def test_invalid_requests(client: RawClient, payload, code: int) -> None:
    body = json.dumps(payload).encode()
    client.send_bytes(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    err = await asyncio.wait_for(_next_unmatched(client), 5)
    assert err["error"]["code"] == code
    if isinstance(payload, dict) and isinstance(payload.get("id"), float):
        assert "`id` must be a number or a string" in err["error"]["message"]
    if isinstance(payload, list):
        assert "batches are not supported" in err["error"]["message"]
    assert (await client.request("daemon/status"))["pid"]


@pytest.mark.parametrize(
    "frame",
    [
        b"Content-Length: abc\r\n\r\n{}",
        b"Content-Type: application/json\r\n\r\n{}",  # no length at all
        b"garbage without a colon\r\n\r\n",
        b"Content-Length: 99999999999\r\n\r\n",  # huge
    ],
)
async def test_unreadable_frames_close_only_that_connection(daemon, frame: bytes) -> None:
    bystander = await daemon.client()
    victim = await daemon.client()
    try:
        victim.send_bytes(frame)
        await asyncio.wait_for(victim.closed.wait(), 5)
        assert victim.unmatched and victim.unmatched[0]["error"]["code"] == -32700
        # The daemon and every other client carry on.
        assert (await bystander.request("daemon/status"))["clients"] == 1
    finally:
        await bystander.close()
        await victim.close()


async def test_wrong_content_length_is_survived_by_others(daemon) -> None:
    bystander = await daemon.client()
    liar = await daemon.client()
    try:
        body = b'{"jsonrpc":"2.0","id":1,"method":"daemon/status"}'
        # Claims fewer bytes than it sends: the body is cut (a parse error), and
        # its tail runs into the next frame's headers, which no longer parse.
        liar.send_bytes(b"Content-Length: %d\r\n\r\n" % (len(body) - 5) + body)
        liar.send({"jsonrpc": "2.0", "id": 2, "method": "daemon/status"})
        await asyncio.wait_for(liar.closed.wait(), 5)
        assert [m["error"]["code"] for m in liar.unmatched] == [-32700, -32700]
        assert (await bystander.request("daemon/status"))["pid"]
    finally:
        await bystander.close()
        await liar.close()


async def test_non_ascii_is_framed_by_bytes(client: RawClient) -> None:
    name = "Ōrchard 模型 🍐"
    result = await client.request("provider/add", {"name": name, "type": "openai"})
    assert result["provider"]["name"] == name
    assert (await client.request("provider/get", {"id": result["provider"]["id"]}))["provider"]["name"] == name


async def test_cancel_of_unknown_request_is_ignored(client: RawClient) -> None:
    client.cancel(12345)
    client.send({"jsonrpc": "2.0", "method": "$/setTrace", "params": {"value": "off"}})
    client.send({"jsonrpc": "2.0", "method": "no/such/notification"})
    assert (await client.request("daemon/status"))["pid"]
