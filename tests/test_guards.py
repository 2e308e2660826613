"""Guards around the shared daemon: what a refused second daemon, a chosen socket
directory, an unreadable config and odd chat requests must not do."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.fakes import FakeProvider
from tests.rpc import RpcFailure

async def test_a_refused_second_daemon_leaves_streaming_answers_alone(daemon: Daemon) -> None:
    with FakeProvider("openai", chunk_delay=0.2, reply="one two three four five six seven eight") as fake:
        client = await daemon.client()
        try:
            await client.request(
                "provider/add", {"name": "Slow", "type": "openai", "apiAddress": fake.url + "/", "models": ["gpt2"]}
            )
            _, answer = client.start("chat/send", {"message": "count"})
            first = await client.notification("chat/delta")
            # A second daemon on the same socket and data is refused...
            second = subprocess.run(
                [sys.executable, "-m", "orchard", "serve"], env=daemon.env, capture_output=True, text=True, timeout=20
            )
            assert second.returncode == 3
            # ...and must not have marked the running answer as interrupted.
            db = Path(daemon.env["ORCHARD_DATA"]) / "orchard.db"
            with sqlite3.connect(db) as conn:
                status = conn.execute("SELECT status FROM messages WHERE id = ?", (first["messageId"],)).fetchone()[0]
            assert status == "streaming"
            result = (await asyncio.wait_for(answer, 20))["result"]
            assert result["status"] == "complete"
        finally:
            await client.close()


async def test_messages_without_a_user_message_are_refused(client) -> None:
    with pytest.raises(RpcFailure) as err:
        await client.request("chat/send", {"messages": [{"role": "system", "content": "be brief"}]})
    assert err.value.code == -32602 and "user" in err.value.message


def test_chat_continue_without_a_message_is_a_usage_error(daemon: Daemon) -> None:
    for args in (["chat", "-c"], ["chat", "--continue", "chat_0123456789ab"]):
        out = daemon.cli(*args)
        assert out.returncode == 2 and "needs a message" in out.stderr, args


def test_a_chosen_socket_directory_others_can_write_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a directory owned by another user")
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chown(shared, 65534, 65534)  # nobody: not ours, and not sticky
    env = dict(env, ORCHARD_SOCKET=str(shared / "orchard.sock"))
    out = subprocess.run([sys.executable, "-m", "orchard", "serve"], env=env, capture_output=True, text=True, timeout=20)
    assert out.returncode == 1
    assert "belongs to another user" in out.stderr and "Traceback" not in out.stderr
    # A sticky directory such as /tmp is fine: others cannot replace the socket there.
    shared.chmod(0o1777)
    proc = subprocess.Popen([sys.executable, "-m", "orchard", "serve"], env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not (shared / "orchard.sock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (shared / "orchard.sock").exists()
        assert (shared.stat().st_mode & 0o7777) == 0o1777  # left as the person made it
    finally:
        proc.terminate()
        proc.wait(10)


async def test_an_unreadable_config_is_reported_once(daemon_process: Daemon) -> None:
    daemon_process.config.parent.mkdir(parents=True, exist_ok=True)
    daemon = daemon_process.start()
    client = await daemon.client()
    try:
        daemon.config.mkdir()  # a directory where the file should be: it cannot be read
        fail = await client.notification("config/didFail", timeout=5)
        assert "directory" in fail["message"]
        await asyncio.sleep(2.5)  # two more once-a-second checks
        again = [m for m in client.drain_notifications() if m["method"] == "config/didFail"]
        assert again == []
    finally:
        await client.close()


async def test_a_slow_client_gets_merged_pieces_and_the_whole_answer(daemon: Daemon) -> None:
    words = [f"w{i}" for i in range(20000)]
    with FakeProvider("openai", reply=" ".join(words)) as fake:
        setup = await daemon.client()
        await setup.request(
            "provider/add", {"name": "Fast", "type": "openai", "apiAddress": fake.url + "/", "models": ["gpt2"]}
        )
        await setup.close()
        # A plain socket that nobody reads for a while (an asyncio reader would keep
        # draining the socket into its own buffer in the background).
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect(str(daemon.socket))
        try:
            body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "chat/send", "params": {"message": "go"}}).encode()
            sock.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await asyncio.sleep(3)  # not reading: the socket fills and the daemon's outbox backs up
            deltas, result = await asyncio.to_thread(_read_until_result, sock, 1)
        finally:
            sock.close()
    assert result["status"] == "complete"
    assert "".join(d["text"] for d in deltas) == result["text"]
    seqs = [d["seq"] for d in deltas]
    assert seqs == sorted(set(seqs)) and seqs[-1] == len(result["text"].split(" "))
    # Merged while the client was behind: far fewer notifications than pieces.
    print(f"\n{seqs[-1]} pieces reached the slow client as {len(deltas)} chat/delta notifications")
    assert len(deltas) < seqs[-1] / 2


def _read_until_result(sock: socket.socket, req_id: int) -> tuple[list[dict], dict]:
    stream = sock.makefile("rb")
    deltas = []
    while True:
        length = 0
        while (line := stream.readline()) != b"\r\n":
            if line.lower().startswith(b"content-length"):
                length = int(line.split(b":")[1])
        msg = json.loads(stream.read(length))
        if msg.get("method") == "chat/delta":
            deltas.append(msg["params"])
        elif msg.get("id") == req_id:
            return deltas, msg["result"]


async def _chat_with(daemon: Daemon, fake: FakeProvider):
    a, b = await daemon.client(), await daemon.client()
    await a.request("provider/add", {"name": "F", "type": "openai", "apiAddress": fake.url + "/", "models": ["gpt2"]})
    first = await a.request("chat/send", {"message": "first"})
    return a, b, first["chatId"]


async def test_two_sends_on_one_chat_at_once_one_is_refused(daemon: Daemon, fakes) -> None:
    fake = fakes("openai", chunk_delay=0.05)
    a, b, chat_id = await _chat_with(daemon, fake)
    try:
        _, f1 = a.start("chat/send", {"chatId": chat_id, "message": "one two three"})
        _, f2 = b.start("chat/send", {"chatId": chat_id, "message": "four five six"})
        replies = [await asyncio.wait_for(f, 20) for f in (f1, f2)]
        ok = [r for r in replies if "result" in r]
        refused = [r for r in replies if "error" in r]
        assert len(ok) == 1 and len(refused) == 1
        assert "already being answered" in refused[0]["error"]["message"]
        messages = (await a.request("chat/get", {"chatId": chat_id}))["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
        assert all(m["status"] == "complete" for m in messages)
    finally:
        await a.close()
        await b.close()


async def test_delete_racing_a_send_is_never_an_internal_error(daemon: Daemon, fakes) -> None:
    fake = fakes("openai", chunk_delay=0.05)
    a, b, chat_id = await _chat_with(daemon, fake)
    try:
        _, sent = a.start("chat/send", {"chatId": chat_id, "message": "and now"})
        _, deleted = b.start("chat/delete", {"chatId": chat_id})
        send_reply = await asyncio.wait_for(sent, 20)
        delete_reply = await asyncio.wait_for(deleted, 20)
        assert delete_reply["result"]["deleted"] is True
        if "error" in send_reply:  # refused before it began, or cancelled by the delete
            assert send_reply["error"]["code"] in (-32004, -32800), send_reply
        else:
            assert send_reply["result"]["status"] == "cancelled"
        with pytest.raises(RpcFailure):
            await a.request("chat/get", {"chatId": chat_id})
        assert "Traceback" not in daemon.log.read_text()
    finally:
        await a.close()
        await b.close()


async def test_a_cancel_right_after_a_send_never_leaves_an_answer_streaming(daemon: Daemon, fakes) -> None:
    fake = fakes("openai", chunk_delay=0.02)
    a, _b, _ = await _chat_with(daemon, fake)
    try:
        outcomes = []
        for i in range(30):
            req_id, reply = a.start("chat/send", {"message": f"question {i}"})
            await asyncio.sleep((i % 6) / 1000)
            a.cancel(req_id)
            msg = await asyncio.wait_for(reply, 20)
            outcomes.append(msg["result"]["status"] if "result" in msg else msg["error"]["code"])
        assert set(outcomes) <= {"cancelled", "complete", -32800}
        chats = (await a.request("chat/list", {"limit": 100}))["chats"]
        for chat in chats:
            detail = await a.request("chat/get", {"chatId": chat["id"]})
            assert detail["live"] is None
            assert all(m["status"] != "streaming" for m in detail["messages"]), detail
    finally:
        await a.close()
        await _b.close()


async def test_an_address_holding_a_key_is_refused_without_echoing_it(client) -> None:
    for address in ("https://generativelanguage.googleapis.com/v1beta?key=AIzaSECRET123", "http://me:SECRET123@127.0.0.1:9/"):
        with pytest.raises(RpcFailure) as err:
            await client.request("provider/add", {"name": "G", "type": "gemini", "apiAddress": address})
        assert err.value.code == -32602 and "api_key" in err.value.message
        assert "SECRET123" not in json.dumps({"m": err.value.message, "d": err.value.data})
    assert (await client.request("provider/list"))["providers"] == []


def test_chat_json_prints_only_json_on_stdout(daemon: Daemon, fakes) -> None:
    fake = fakes("openai")
    daemon.cli("provider", "add", "F", "--type", "openai", "--url", fake.url + "/", "--model", "gpt2")
    out = daemon.cli("chat", "--json", "hi")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["text"] == "You said: hi" and "You said: hi" in out.stderr
