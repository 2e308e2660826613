"""Chats that live in the daemon: history, persistence, crash recovery, browsing, sharing, usage, CLI.

Everything goes through a real `orchard serve` over its socket (or the real
`orchard` command line) to real fake providers on 127.0.0.1; nothing is
patched. What the provider received (its recorded request bodies) is the
proof that a continued chat sends its whole history.

The fakes are deterministic (tests/fakes/answer.py): the reply is "You said:
<last user message>" (or the `reply` switch), one word per delta, and a token
is a word — prompt tokens count every message and the system prompt,
completion tokens the words of the reply.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sqlite3
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from orchard.chats.store import SCHEMA_VERSION
from tests.conftest import Daemon
from tests.fakes import FakeProcess, FakeProvider
from tests.rpc import RawClient, RpcFailure

pytestmark = pytest.mark.asyncio

NOT_FOUND = -32004
# A model each fake type serves by default (the OpenAI fake serves both of its).
MODELS = {
    "openai": ["gpt2", "gpt-4o-mini"],
    "anthropic": ["claude-3-5-haiku-20241022", "claude-sonnet-4-5-20250929"],
}
LONG_REPLY = " ".join(f"word{i}" for i in range(60))
MEDIUM_REPLY = " ".join(f"piece{i}" for i in range(30))


def pieces(text: str) -> list[str]:
    """The deltas a fake streams for ``text``: one word each, with the whitespace before it."""
    return re.findall(r"\s*\S+", text)


def prefixes(text: str) -> set[str]:
    parts = pieces(text)
    return {"".join(parts[:k]) for k in range(len(parts) + 1)}


def words(text: str) -> int:
    return len(text.split())


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
async def clients(daemon: Daemon) -> AsyncIterator[Callable[[], Any]]:
    """A factory of extra clients of the started daemon, closed at teardown."""
    opened: list[RawClient] = []

    async def make() -> RawClient:
        c = await daemon.client()
        opened.append(c)
        return c

    yield make
    for c in opened:
        await c.close()


async def add_provider(client: RawClient, fake: FakeProvider, name: str | None = None,
                       models: list[str] | None = None) -> str:
    """`provider/add` with the fake's address and no key, then `model/add`: as test_chat.py does."""
    params = {"name": name or f"Fake {fake.type}", "type": fake.type, "apiKey": "", "apiAddress": fake.url}
    pid = (await client.request("provider/add", params))["provider"]["id"]
    ids = models or [MODELS[fake.type][0]]
    added = await client.request("model/add", {"providerId": pid, "ids": ids})
    assert added["ids"] == ids
    return pid


def chat_bodies(fake: FakeProvider) -> list[dict[str, Any]]:
    return [r["body"] for r in fake.requests if r["method"] == "POST"]


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


class Inbox:
    """The notifications one client received, in order, with when they were read."""

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.items: list[tuple[float, dict[str, Any]]] = []

    def _drain(self) -> None:
        q = self.client.notifications
        while not q.empty():
            self.items.append((time.monotonic(), q.get_nowait()))

    def mark(self) -> int:
        self._drain()
        return len(self.items)

    def all(self, since: int = 0) -> list[dict[str, Any]]:
        self._drain()
        return [m for _, m in self.items[since:]]

    def deltas(self, chat_id: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        return [m["params"] for m in self.all(since)
                if m["method"] == "chat/delta" and chat_id in (None, m["params"]["chatId"])]

    def updates(self, chat_id: str | None = None, since: int = 0) -> list[str]:
        return [m["params"]["change"] for m in self.all(since)
                if m["method"] == "chat/didUpdate" and chat_id in (None, m["params"]["chatId"])]

    def update_ids(self, change: str) -> list[str]:
        return [m["params"]["chatId"] for m in self.all()
                if m["method"] == "chat/didUpdate" and m["params"]["change"] == change]

    async def wait(self, predicate: Callable[[Inbox], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while True:
            self._drain()
            if predicate(self):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what or predicate}: got {self.all()[-5:]}")
            try:
                msg = await asyncio.wait_for(self.client.notifications.get(), remaining)
            except asyncio.TimeoutError:
                continue
            self.items.append((time.monotonic(), msg))


async def send(client: RawClient, params: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    return await client.request("chat/send", params, timeout=timeout)


async def get(client: RawClient, chat_id: str) -> dict[str, Any]:
    return await client.request("chat/get", {"chatId": chat_id})


async def refused(coro: Any) -> RpcFailure:
    with pytest.raises(RpcFailure) as err:
        await coro
    return err.value


def text(delta_list: list[dict[str, Any]]) -> str:
    return "".join(d["text"] or "" for d in delta_list)


# -- 1. multi-turn chats ------------------------------------------------------------------------


async def test_a_continued_chat_sends_the_whole_history(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)

    first = await send(client, {"providerId": pid, "model": "gpt2", "message": "hello there"})
    assert first["status"] == "complete" and first["text"] == "You said: hello there"
    chat_id = first["chatId"]

    second = await send(client, {"chatId": chat_id, "message": "and again"})
    assert second["status"] == "complete" and second["text"] == "You said: and again"
    assert second["chatId"] == chat_id and second["messageId"] != first["messageId"]
    # No provider or model given: the chat's own are used.
    assert (second["providerId"], second["model"]) == (pid, "gpt2")

    third = await send(client, {"chatId": chat_id, "message": "one more"})
    bodies = chat_bodies(fake)
    assert len(bodies) == 3
    assert bodies[0]["messages"] == [user("hello there")]
    assert bodies[1]["messages"] == [user("hello there"), assistant("You said: hello there"), user("and again")]
    assert bodies[2]["messages"] == [
        user("hello there"), assistant("You said: hello there"),
        user("and again"), assistant("You said: and again"), user("one more"),
    ]
    # The whole history is counted as prompt: 2 + 4 + 2 + 4 + 2 words.
    assert third["usage"] == {"inputTokens": 14, "outputTokens": 4}

    detail = await get(client, chat_id)
    assert detail["live"] is None and detail["system"] is None
    assert detail["chat"]["messageCount"] == 6 and detail["chat"]["title"] == "hello there"
    got = [(m["role"], m["text"], m["status"]) for m in detail["messages"]]
    assert got == [
        ("user", "hello there", "complete"), ("assistant", "You said: hello there", "complete"),
        ("user", "and again", "complete"), ("assistant", "You said: and again", "complete"),
        ("user", "one more", "complete"), ("assistant", "You said: one more", "complete"),
    ]
    answers = [m for m in detail["messages"] if m["role"] == "assistant"]
    assert [m["id"] for m in answers] == [first["messageId"], second["messageId"], third["messageId"]]
    assert answers[0]["usage"] == {"inputTokens": 2, "outputTokens": 4}
    assert answers[0]["finishReason"] == "stop" and answers[0]["timings"]["totalMs"] >= 0
    assert len({m["id"] for m in detail["messages"]}) == 6


async def test_switching_provider_and_model_mid_chat(client: RawClient, fakes) -> None:
    a = fakes("openai")
    b = fakes("anthropic")
    pa = await add_provider(client, a, name="Fake A", models=["gpt2", "gpt-4o-mini"])
    pb = await add_provider(client, b, name="Fake B", models=MODELS["anthropic"])
    claude = MODELS["anthropic"][0]

    r1 = await send(client, {"providerId": pa, "model": "gpt2", "message": "first question"})
    chat_id = r1["chatId"]
    r2 = await send(client, {"chatId": chat_id, "providerId": pa, "model": "gpt-4o-mini", "message": "second"})
    r3 = await send(client, {"chatId": chat_id, "providerId": pb, "message": "third"})
    r4 = await send(client, {"chatId": chat_id, "message": "fourth"})  # stays on the chat's last: B
    assert [(r["providerId"], r["model"], r["status"]) for r in (r1, r2, r3, r4)] == [
        (pa, "gpt2", "complete"), (pa, "gpt-4o-mini", "complete"), (pb, claude, "complete"), (pb, claude, "complete"),
    ]

    a_bodies, b_bodies = chat_bodies(a), chat_bodies(b)
    assert [body["model"] for body in a_bodies] == ["gpt2", "gpt-4o-mini"]
    assert a_bodies[1]["messages"] == [user("first question"), assistant("You said: first question"), user("second")]
    # The other provider gets the history the first one wrote, in its own wire format.
    assert [body["model"] for body in b_bodies] == [claude, claude]
    history = [user("first question"), assistant("You said: first question"),
               user("second"), assistant("You said: second"), user("third")]
    assert b_bodies[0]["messages"] == history
    assert b_bodies[1]["messages"] == history + [assistant("You said: third"), user("fourth")]

    # Only a model that only B offers: B answers with it.
    sonnet = MODELS["anthropic"][1]
    r5 = await send(client, {"chatId": chat_id, "model": sonnet, "message": "fifth"})
    assert (r5["providerId"], r5["model"], r5["status"]) == (pb, sonnet, "complete")
    assert chat_bodies(b)[-1]["model"] == sonnet and len(chat_bodies(b)[-1]["messages"]) == 9

    detail = await get(client, chat_id)
    answered_by = [(m["providerId"], m["model"]) for m in detail["messages"] if m["role"] == "assistant"]
    assert answered_by == [(pa, "gpt2"), (pa, "gpt-4o-mini"), (pb, claude), (pb, claude), (pb, sonnet)]
    assert all(m["providerId"] is None for m in detail["messages"] if m["role"] == "user")
    assert (detail["chat"]["providerId"], detail["chat"]["model"]) == (pb, sonnet)
    listed = (await client.request("chat/list", {}))["chats"]
    assert [(c["id"], c["providerId"], c["model"]) for c in listed] == [(chat_id, pb, sonnet)]


async def test_switching_only_the_model_keeps_the_chats_provider(client: RawClient, fakes) -> None:
    a = fakes("openai")
    b = fakes("openai")
    await add_provider(client, a, name="Fake A", models=["gpt2", "gpt-4o-mini"])
    pb = await add_provider(client, b, name="Fake B", models=["gpt2", "gpt-4o-mini"])
    r1 = await send(client, {"providerId": pb, "model": "gpt2", "message": "hello"})
    r2 = await send(client, {"chatId": r1["chatId"], "model": "gpt-4o-mini", "message": "again"})
    assert (r2["providerId"], r2["model"]) == (pb, "gpt-4o-mini")
    assert chat_bodies(a) == []


async def test_the_system_prompt_persists_for_the_chat(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    system = {"role": "system", "content": "Be brief."}

    r1 = await send(client, {"providerId": pid, "system": "Be brief.", "message": "hi"})
    chat_id = r1["chatId"]
    await send(client, {"chatId": chat_id, "message": "and now"})
    assert (await get(client, chat_id))["system"] == "Be brief."
    bodies = chat_bodies(fake)
    assert bodies[0]["messages"] == [system, user("hi")]
    assert bodies[1]["messages"] == [system, user("hi"), assistant("You said: hi"), user("and now")]

    # A new system prompt replaces it from then on.
    await send(client, {"chatId": chat_id, "system": "Be long.", "message": "third"})
    await send(client, {"chatId": chat_id, "message": "fourth"})
    assert (await get(client, chat_id))["system"] == "Be long."
    for body in chat_bodies(fake)[2:]:
        assert body["messages"][0] == {"role": "system", "content": "Be long."}
        assert [m["role"] for m in body["messages"]].count("system") == 1

    # A system turn inside `messages` becomes the chat's system prompt, not a message.
    r = await send(client, {"providerId": pid, "messages": [system, user("q")]})
    detail = await get(client, r["chatId"])
    assert detail["system"] == "Be brief."
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"]


async def test_the_title_is_the_first_user_message(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)

    async def title(params: dict[str, Any]) -> str:
        r = await send(client, {"providerId": pid, **params})
        return (await get(client, r["chatId"]))["chat"]["title"]

    assert await title({"message": "What is an orchard?"}) == "What is an orchard?"
    assert await title({"message": "  two\n\nlines   here  "}) == "two lines here"

    long = ("Tell me everything you know about the history of the apple orchards "
            "of Normandy and the cider they make")
    t = await title({"message": long})
    assert t.endswith("…"), t
    cut = t[:-1]
    assert long.startswith(cut) and long[len(cut)] == " ", "cut at a word"
    assert 40 <= len(cut) <= 60, len(cut)

    assert await title({"message": "x" * 100}) == "x" * 60 + "…"
    # The first *user* message, even after a system turn and with several turns.
    assert await title({"messages": [{"role": "system", "content": "Be nice."}, user("the question"),
                                     assistant("an answer"), user("a follow-up")]}) == "the question"


# -- 2. persistence ------------------------------------------------------------------------------


async def test_the_user_message_is_stored_before_the_request(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai", first_byte_delay=5.0)
    pid = await add_provider(client, fake)
    other = await clients()
    watching = Inbox(other)

    req_id, future = client.start("chat/send", {"providerId": pid, "message": "hello there"})
    await asyncio.to_thread(fake.wait_for_requests, 1, 5.0)
    await watching.wait(lambda i: i.update_ids("created"), what="chat/didUpdate created")
    (chat_id,) = watching.update_ids("created")

    detail = await get(other, chat_id)  # while the provider is still silent
    assert detail["chat"]["messageCount"] == 2
    u, a = detail["messages"]
    assert (u["role"], u["text"], u["status"]) == ("user", "hello there", "complete")
    assert (a["role"], a["text"], a["status"]) == ("assistant", "", "streaming")
    assert (a["providerId"], a["model"]) == (pid, "gpt2")
    assert detail["live"] == {"messageId": a["id"], "seq": 0}
    assert not future.done()

    assert await other.request("chat/cancel", {"chatId": chat_id}) == {"chatId": chat_id, "cancelled": True}
    result = (await asyncio.wait_for(future, 5))["result"]
    assert result["status"] == "cancelled" and result["text"] == ""
    assert await fake.wait_for_disconnect_async(3.0) is not None
    detail = await get(other, chat_id)
    assert detail["live"] is None
    assert [(m["role"], m["status"]) for m in detail["messages"]] == [("user", "complete"), ("assistant", "cancelled")]


async def test_cancel_keeps_the_partial_answer(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai", reply=LONG_REPLY, chunk_delay=0.05)
    pid = await add_provider(client, fake)
    inbox = Inbox(client)
    req_id, future = client.start("chat/send", {"providerId": pid, "message": "tell me"})
    await inbox.wait(lambda i: len(i.deltas()) >= 5, what="5 deltas")
    chat_id = inbox.deltas()[0]["chatId"]

    # Mid-stream, another client sees what has arrived so far (not the lagging stored row).
    other = await clients()
    seen = text(inbox.deltas())
    detail = await get(other, chat_id)
    live_text = detail["messages"][1]["text"]
    assert detail["messages"][1]["status"] == "streaming"
    assert live_text in prefixes(LONG_REPLY) and live_text.startswith(seen)
    assert detail["live"]["seq"] >= 5 and detail["live"]["seq"] == len(pieces(live_text))

    client.cancel(req_id)
    result = (await asyncio.wait_for(future, 5))["result"]
    assert result["status"] == "cancelled" and result["error"] is None
    assert result["text"] == text(inbox.deltas()) and result["text"] in prefixes(LONG_REPLY)
    assert 5 <= len(pieces(result["text"])) < 60
    assert await fake.wait_for_disconnect_async(3.0) is not None

    detail = await get(other, chat_id)
    answer = detail["messages"][1]
    assert (answer["status"], answer["text"], answer["error"]) == ("cancelled", result["text"], None)
    assert answer["id"] == result["messageId"] and detail["live"] is None

    # The partial answer is part of the history sent next.
    fake.configure(reply=None, chunk_delay=0.0)
    await send(client, {"chatId": chat_id, "message": "go on"})
    assert chat_bodies(fake)[-1]["messages"] == [user("tell me"), assistant(result["text"]), user("go on")]


async def test_a_provider_error_is_stored_with_its_kind(client: RawClient, fakes) -> None:
    fake = fakes("openai", status=500, fail_times=100)
    pid = await add_provider(client, fake)
    result = await send(client, {"providerId": pid, "message": "hello there"})
    assert result["status"] == "error" and result["error"]["kind"] == "server_error"

    detail = await get(client, result["chatId"])
    u, a = detail["messages"]
    assert (u["role"], u["text"], u["status"]) == ("user", "hello there", "complete")
    assert (a["status"], a["text"], a["id"]) == ("error", "", result["messageId"])
    assert a["error"]["kind"] == "server_error" and a["error"]["status"] == 500
    assert a["error"]["message"] == result["error"]["message"] and a["error"]["hint"] == result["error"]["hint"]
    assert a["usage"] is None

    # The failed, empty answer is not sent again; the user's message is.
    fake.configure(status=None)
    ok = await send(client, {"chatId": result["chatId"], "message": "try again"})
    assert ok["status"] == "complete"
    # The failed answer left two questions in a row: they go as one turn, since
    # some providers require user and assistant turns to alternate.
    assert chat_bodies(fake)[-1]["messages"] == [user("hello there\n\ntry again")]


async def test_chats_survive_a_restart(daemon: Daemon, fakes) -> None:
    fake = fakes("openai")
    c = await daemon.client()
    try:
        pid = await add_provider(c, fake)
        r1 = await send(c, {"providerId": pid, "system": "Be brief.", "message": "first chat"})
        await send(c, {"chatId": r1["chatId"], "message": "second turn"})
        r2 = await send(c, {"providerId": pid, "message": "another chat"})
        before_list = await c.request("chat/list", {})
        before = {cid: await get(c, cid) for cid in (r1["chatId"], r2["chatId"])}
        before_usage = await c.request("usage/summary", {})
    finally:
        await c.close()

    assert daemon.stop() == 0
    daemon.start()
    c = await daemon.client()
    try:
        assert await c.request("chat/list", {}) == before_list
        for cid, detail in before.items():
            assert await get(c, cid) == detail
        assert await c.request("usage/summary", {}) == before_usage
        # And the chat goes on with its history and system prompt.
        await send(c, {"chatId": r1["chatId"], "message": "third turn"})
        assert chat_bodies(fake)[-1]["messages"] == [
            {"role": "system", "content": "Be brief."}, user("first chat"), assistant("You said: first chat"),
            user("second turn"), assistant("You said: second turn"), user("third turn"),
        ]
    finally:
        await c.close()


async def test_the_database_is_private(daemon: Daemon, client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    await send(client, {"providerId": pid, "message": "secret thoughts"})
    data = Path(daemon.env["ORCHARD_DATA"])
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    db = data / "orchard.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        assert p.exists(), p
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, (p, oct(p.stat().st_mode))


# -- 3. kill -9 mid-stream ---------------------------------------------------------------------


async def test_kill_9_mid_stream_keeps_all_but_the_last_second(daemon: Daemon, fakes) -> None:
    fake = fakes("openai", reply=LONG_REPLY, chunk_delay=0.1)
    c = await daemon.client()
    streamed: list[tuple[float, str]] = []
    try:
        pid = await add_provider(c, fake)
        c.drain_notifications()
        c.start("chat/send", {"providerId": pid, "message": "a long story please"})
        chat_id = None
        while True:
            msg = await asyncio.wait_for(c.notifications.get(), 10)
            if msg["method"] != "chat/delta":
                continue
            streamed.append((time.monotonic(), msg["params"]["text"] or ""))
            chat_id = msg["params"]["chatId"]
            # 17, not 15: the daemon checkpoints about every 5th delta here, so 15 would hide the loss.
            if len(streamed) >= 17 and streamed[-1][0] - streamed[0][0] >= 1.2:
                break
        daemon.kill9()
        killed_at = time.monotonic()
    finally:
        await c.close()

    all_text = "".join(t for _, t in streamed)
    floor_text = "".join(t for at, t in streamed if at <= killed_at - 1.0)
    assert await fake.wait_for_disconnect_async(5.0) is not None  # the dead daemon's stream was dropped

    daemon.start()
    c = await daemon.client()
    try:
        detail = await get(c, chat_id)
        u, a = detail["messages"]
        stored = a["text"]
        print(f"\nkill -9 after {len(streamed)} deltas ({len(all_text)} chars streamed in "
              f"{streamed[-1][0] - streamed[0][0]:.2f} s): {len(stored)} chars stored "
              f"({len(pieces(stored))} deltas), {len(all_text) - len(stored)} chars lost; "
              f"floor (streamed up to 1 s before the kill) {len(floor_text)} chars")
        assert (u["role"], u["text"], u["status"]) == ("user", "a long story please", "complete")
        assert a["status"] == "error" and a["error"]["kind"] == "interrupted"
        assert a["error"]["message"]
        assert stored and all_text.startswith(stored) and stored in prefixes(LONG_REPLY)
        assert len(stored) >= len(floor_text), "more than a second of answer was lost"
        assert detail["live"] is None
        assert "streaming when the daemon last stopped" in daemon.log.read_text()

        # The interrupted chat can be continued, with what was kept.
        fake.configure(reply=None, chunk_delay=0.0)
        result = await send(c, {"chatId": chat_id, "message": "go on"})
        assert result["status"] == "complete"
        assert chat_bodies(fake)[-1]["messages"] == [user("a long story please"), assistant(stored), user("go on")]
    finally:
        await c.close()


def stored_answer(daemon: Daemon, message_id: str) -> str:
    """The answer's text as it is on disk right now (read-only, beside the running daemon)."""
    db = Path(daemon.env["ORCHARD_DATA"]) / "orchard.db"
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT text FROM messages WHERE id = ?", (message_id,)).fetchone()[0]
    finally:
        conn.close()


async def test_kill_9_during_a_stall_keeps_what_arrived_before_it(daemon: Daemon) -> None:
    fake = FakeProcess("openai", reply=LONG_REPLY, chunk_delay=0.08).start()
    c = await daemon.client()
    stopped = False
    try:
        pid = await add_provider(c, fake)
        inbox = Inbox(c)
        c.start("chat/send", {"providerId": pid, "message": "a long story please"})
        want = 4
        while True:  # pause the provider right after a delta the daemon has not checkpointed yet
            await inbox.wait(lambda i: len(i.deltas()) >= want, what=f"{want} deltas")
            os.kill(fake.process.pid, signal.SIGSTOP)
            stopped = True
            await asyncio.sleep(0.3)  # frames in flight arrive, a checkpoint under way lands
            streamed = text(inbox.deltas())
            message_id = inbox.deltas()[0]["messageId"]
            if stored_answer(daemon, message_id) != streamed:
                break
            os.kill(fake.process.pid, signal.SIGCONT)
            stopped = False
            want = len(inbox.deltas()) + 2
            assert want < 50, "every delta was checkpointed at once"
        await asyncio.sleep(1.5)  # the provider is silent; everything streamed is 1.5 s old
        on_disk = stored_answer(daemon, message_id)
        daemon.kill9()
    finally:
        await c.close()
        if stopped:
            os.kill(fake.process.pid, signal.SIGCONT)
        fake.stop()
    daemon.start()
    c = await daemon.client()
    try:
        stored = (await get(c, inbox.deltas()[0]["chatId"]))["messages"][1]["text"]
    finally:
        await c.close()
    print(f"\nstall then kill -9: {len(streamed)} chars streamed 1.5 s before the kill, "
          f"{len(on_disk)} on disk during the stall, {len(stored)} kept after the restart")
    assert stored == streamed, "text that arrived 1.5 s before the crash was lost"


async def test_a_client_leaving_mid_stream_stores_the_partial_answer(daemon: Daemon, clients, fakes) -> None:
    fake = fakes("openai", reply=LONG_REPLY, chunk_delay=0.05)
    watcher = await clients()
    watching = Inbox(watcher)
    leaver = await daemon.client()
    try:
        pid = await add_provider(leaver, fake)
        inbox = Inbox(leaver)
        leaver.start("chat/send", {"providerId": pid, "message": "go"})
        await inbox.wait(lambda i: len(i.deltas()) >= 4)
        chat_id = inbox.deltas()[0]["chatId"]
    finally:
        await leaver.close()
    assert await fake.wait_for_disconnect_async(3.0) is not None
    await watching.wait(lambda i: "answered" in i.updates(chat_id), what="answered")
    detail = await get(watcher, chat_id)
    answer = detail["messages"][1]
    assert answer["status"] == "cancelled" and detail["live"] is None
    assert answer["text"] in prefixes(LONG_REPLY) and answer["text"].startswith(text(inbox.deltas()))


async def test_stopping_the_daemon_mid_stream_stores_the_partial_answer(daemon: Daemon, fakes) -> None:
    fake = fakes("openai", reply=LONG_REPLY, chunk_delay=0.05)
    c = await daemon.client()
    try:
        pid = await add_provider(c, fake)
        inbox = Inbox(c)
        c.start("chat/send", {"providerId": pid, "message": "go"})
        await inbox.wait(lambda i: len(i.deltas()) >= 4)
        chat_id = inbox.deltas()[0]["chatId"]
        assert daemon.stop() == 0
        streamed = text(inbox.deltas())
    finally:
        await c.close()
    daemon.start()
    c = await daemon.client()
    try:
        answer = (await get(c, chat_id))["messages"][1]
    finally:
        await c.close()
    # A clean stop is not a crash: the answer was finished as cancelled, with all of its text.
    assert answer["status"] == "cancelled", answer
    assert answer["text"] in prefixes(LONG_REPLY) and answer["text"].startswith(streamed)


# -- 4. browsing ------------------------------------------------------------------------------------


async def test_list_is_newest_first_and_pages(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    ids = [(await send(client, {"providerId": pid, "message": f"chat number {i}"}))["chatId"] for i in range(5)]

    listed = (await client.request("chat/list", {}))["chats"]
    assert [c["id"] for c in listed] == ids[::-1]
    assert [c["title"] for c in listed] == [f"chat number {i}" for i in range(4, -1, -1)]
    assert all(c["messageCount"] == 2 and c["providerId"] == pid and c["model"] == "gpt2" for c in listed)
    stamps = [c["updatedAt"] for c in listed]
    assert stamps == sorted(stamps, reverse=True)
    assert all(c["updatedAt"] >= c["createdAt"] for c in listed)
    assert (await client.request("chat/list", {}))["nextBefore"] is None

    pages, before = [], None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if before is not None:
            params["before"], params["beforeId"] = before
        page = await client.request("chat/list", params)
        pages.append([c["id"] for c in page["chats"]])
        if page["nextBefore"] is None:
            break
        before = page["nextBefore"], page["nextBeforeId"]
        assert before == (page["chats"][-1]["updatedAt"], page["chats"][-1]["id"])
    assert pages == [ids[4:2:-1], ids[2:0:-1], ids[0:1]]

    # A chat that goes on moves to the top.
    await send(client, {"chatId": ids[1], "message": "back to this one"})
    listed = (await client.request("chat/list", {"limit": 3}))["chats"]
    assert [c["id"] for c in listed] == [ids[1], ids[4], ids[3]]
    assert listed[0]["messageCount"] == 4


async def test_search_finds_words_in_messages(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)

    async def chat(message: str, reply: str | None = None) -> str:
        fake.configure(reply=reply)
        return (await send(client, {"providerId": pid, "message": message}))["chatId"]

    elephant = await chat("The purple elephant dances at midnight")
    giraffe = await chat("a green giraffe sleeps")
    rain = await chat("purple rain, again", reply="Bananas are yellow")

    async def search(query: str) -> list[str]:
        return [c["id"] for c in (await client.request("chat/list", {"query": query}))["chats"]]

    assert await search("purple") == [rain, elephant]  # newest first
    assert await search("elephant purple") == [elephant]  # every word, in any order
    assert await search("PURPLE Midnight") == [elephant]
    assert await search("purple eleph") == [elephant]  # the last word may be a prefix
    assert await search("gir") == [giraffe]
    assert await search("bananas") == [rain]  # answers are searched too
    assert await search("said") == [giraffe, elephant]  # "You said: ..." in the other two answers
    assert await search("zebra") == []
    assert await search("purple zebra") == []
    for odd in ('"', "AND", "purple OR", "NOT purple", "*", "(", "col:x", "purple\"rain"):
        assert isinstance(await search(odd), list), odd  # never an FTS5 syntax error
    page = await client.request("chat/list", {"query": "purple", "limit": 1})
    assert [c["id"] for c in page["chats"]] == [rain] and page["nextBefore"] is not None
    page = await client.request("chat/list", {"query": "purple", "limit": 1, "before": page["nextBefore"]})
    assert [c["id"] for c in page["chats"]] == [elephant]


async def test_rename(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    other = Inbox(await clients())
    chat_id = (await send(client, {"providerId": pid, "message": "hello there"}))["chatId"]

    summary = await client.request("chat/rename", {"chatId": chat_id, "title": "  My orchard  "})
    assert summary["id"] == chat_id and summary["title"] == "My orchard"
    await other.wait(lambda i: "renamed" in i.updates(chat_id), what="didUpdate renamed")
    assert (await get(client, chat_id))["chat"]["title"] == "My orchard"
    assert (await client.request("chat/list", {}))["chats"][0]["title"] == "My orchard"

    err = await refused(client.request("chat/rename", {"chatId": chat_id, "title": "   "}))
    assert err.code == -32602
    err = await refused(client.request("chat/rename", {"chatId": "chat_nope", "title": "x"}))
    assert err.code == NOT_FOUND


async def test_delete(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    other = Inbox(await clients())
    keep = (await send(client, {"providerId": pid, "message": "keep this"}))["chatId"]
    gone = (await send(client, {"providerId": pid, "message": "forget the walrus"}))["chatId"]

    assert await client.request("chat/delete", {"chatId": gone}) == {"chatId": gone, "deleted": True}
    await other.wait(lambda i: "deleted" in i.updates(gone), what="didUpdate deleted")
    assert [c["id"] for c in (await client.request("chat/list", {}))["chats"]] == [keep]
    assert (await client.request("chat/list", {"query": "walrus"}))["chats"] == []
    err = await refused(get(client, gone))
    assert err.code == NOT_FOUND and gone in err.message
    assert "orchard history list" in err.data["hint"]
    err = await refused(client.request("chat/delete", {"chatId": gone}))
    assert err.code == NOT_FOUND
    assert len((await get(client, keep))["messages"]) == 2
    usage = await client.request("usage/summary", {})
    assert [c["chatId"] for c in usage["chats"]] == [keep] and usage["total"]["messages"] == 1


async def test_deleting_a_chat_that_is_streaming_cancels_its_answer(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai", reply=LONG_REPLY, chunk_delay=0.05)
    pid = await add_provider(client, fake)
    inbox = Inbox(client)
    _, future = client.start("chat/send", {"providerId": pid, "message": "go"})
    await inbox.wait(lambda i: len(i.deltas()) >= 3)
    chat_id = inbox.deltas()[0]["chatId"]
    other = await clients()
    assert (await other.request("chat/delete", {"chatId": chat_id}))["deleted"] is True
    result = (await asyncio.wait_for(future, 5))["result"]
    assert result["status"] == "cancelled"
    assert await fake.wait_for_disconnect_async(3.0) is not None
    assert (await refused(get(other, chat_id))).code == NOT_FOUND
    assert (await other.request("chat/list", {}))["chats"] == []


async def test_fork_up_to_a_message(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    r1 = await send(client, {"providerId": pid, "system": "Be brief.", "message": "first question"})
    chat_id = r1["chatId"]
    await send(client, {"chatId": chat_id, "message": "second question"})
    original = await get(client, chat_id)
    assert len(original["messages"]) == 4

    fork = await client.request("chat/fork", {"chatId": chat_id, "messageId": r1["messageId"]})
    fork_id = fork["chat"]["id"]
    assert fork_id != chat_id
    assert fork["chat"]["messageCount"] == 2 and fork["system"] == "Be brief." and fork["live"] is None
    assert fork["chat"]["title"].startswith("first question")
    keys = ("role", "text", "status", "providerId", "model", "usage", "finishReason")
    assert [{k: m[k] for k in keys} for m in fork["messages"]] == \
        [{k: m[k] for k in keys} for m in original["messages"][:2]]
    assert not {m["id"] for m in fork["messages"]} & {m["id"] for m in original["messages"]}
    assert await get(client, fork_id) == fork
    assert await get(client, chat_id) == original  # the original is unchanged

    # The fork goes its own way: only the kept messages are sent.
    await send(client, {"chatId": fork_id, "message": "another way"})
    assert chat_bodies(fake)[-1]["messages"] == [
        {"role": "system", "content": "Be brief."}, user("first question"),
        assistant("You said: first question"), user("another way"),
    ]
    assert await get(client, chat_id) == original

    # Forking at the first message keeps just that one.
    first_only = await client.request("chat/fork", {"chatId": chat_id, "messageId": original["messages"][0]["id"]})
    assert [m["text"] for m in first_only["messages"]] == ["first question"]

    err = await refused(client.request("chat/fork", {"chatId": chat_id, "messageId": "msg_nope"}))
    assert err.code == NOT_FOUND and "msg_nope" in err.message
    err = await refused(client.request("chat/fork", {"chatId": "chat_nope", "messageId": r1["messageId"]}))
    assert err.code == NOT_FOUND


async def test_a_fork_is_the_newest_chat(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    r1 = await send(client, {"providerId": pid, "message": "first question"})
    await send(client, {"chatId": r1["chatId"], "message": "second question"})
    fork = await client.request("chat/fork", {"chatId": r1["chatId"], "messageId": r1["messageId"]})
    assert fork["chat"]["updatedAt"] >= fork["chat"]["createdAt"]
    listed = (await client.request("chat/list", {}))["chats"]
    assert [c["id"] for c in listed] == [fork["chat"]["id"], r1["chatId"]]


async def test_an_unknown_chat_is_not_found(client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    for method, params in [
        ("chat/get", {"chatId": "chat_nope"}),
        ("chat/rename", {"chatId": "chat_nope", "title": "t"}),
        ("chat/delete", {"chatId": "chat_nope"}),
        ("chat/fork", {"chatId": "chat_nope", "messageId": "msg_nope"}),
        ("chat/attach", {"chatId": "chat_nope"}),
        ("chat/send", {"chatId": "chat_nope", "message": "hi"}),
        ("chat/send", {"chatId": "chat_nope", "providerId": pid, "message": "hi"}),
    ]:
        err = await refused(client.request(method, params))
        assert err.code == NOT_FOUND, (method, err.code, err.message)
        assert "chat_nope" in err.message and err.data.get("hint"), (method, err.data)
    assert await client.request("chat/cancel", {"chatId": "chat_nope"}) == {"chatId": "chat_nope", "cancelled": False}
    assert chat_bodies(fake) == []
    assert (await client.request("chat/list", {}))["chats"] == []


# -- 5. shared chats ------------------------------------------------------------------------------------


async def test_attach_replays_then_follows(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai", reply=MEDIUM_REPLY, chunk_delay=0.05)
    pid = await add_provider(client, fake)
    total = len(pieces(MEDIUM_REPLY))
    a = Inbox(client)
    _, future = client.start("chat/send", {"providerId": pid, "message": "share this"})
    await a.wait(lambda i: len(i.deltas()) >= 6, what="6 deltas on A")
    chat_id = a.deltas()[0]["chatId"]

    b_client, c_client = await clients(), await clients()
    b, c = Inbox(b_client), Inbox(c_client)
    n = 3
    detail = await b_client.request("chat/attach", {"chatId": chat_id, "fromSeq": n})
    assert detail["chat"]["id"] == chat_id and detail["live"]["seq"] >= 6
    replayed = b.deltas(chat_id)  # sent before the answer to chat/attach
    assert [d["seq"] for d in replayed] == list(range(n + 1, detail["live"]["seq"] + 1))
    # The detail and the replay agree: the answer's text so far is exactly live.seq pieces.
    assert detail["messages"][1]["text"] == "".join(pieces(MEDIUM_REPLY)[:detail["live"]["seq"]])
    assert detail["messages"][1]["status"] == "streaming"
    await c_client.request("chat/attach", {"chatId": chat_id, "fromSeq": 0})

    result = (await asyncio.wait_for(future, 20))["result"]
    assert result["status"] == "complete" and result["text"] == MEDIUM_REPLY
    for inbox in (b, c):
        await inbox.wait(lambda i: "answered" in i.updates(chat_id), what="answered")
    a_deltas, b_deltas, c_deltas = a.deltas(chat_id), b.deltas(chat_id), c.deltas(chat_id)
    assert [d["seq"] for d in a_deltas] == list(range(1, total + 1))
    assert [d["seq"] for d in b_deltas] == list(range(n + 1, total + 1)), "gaps or duplicates"
    assert [d["seq"] for d in c_deltas] == list(range(1, total + 1)), "gaps or duplicates"
    assert text(a_deltas[:n]) + text(b_deltas) == result["text"]
    assert text(c_deltas) == result["text"]
    assert {d["messageId"] for d in b_deltas + c_deltas} == {result["messageId"]}
    print(f"\nattach: B replayed {len(replayed)} deltas then followed {len(b_deltas) - len(replayed)} live")

    # Followers keep following: the next answer in the chat reaches them too.
    fake.configure(reply=None, chunk_delay=0.0)
    mark = b.mark()
    nxt = await send(client, {"chatId": chat_id, "message": "more"})
    await b.wait(lambda i: "answered" in i.updates(chat_id, since=mark))
    assert text(b.deltas(chat_id, since=mark)) == nxt["text"] == "You said: more"


async def test_attach_to_a_chat_at_rest(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    r = await send(client, {"providerId": pid, "message": "hello there"})
    other = await clients()
    detail = await other.request("chat/attach", {"chatId": r["chatId"], "fromSeq": 0})
    assert detail["live"] is None and detail == await get(other, r["chatId"])
    assert [m for m in other.drain_notifications() if m["method"] == "chat/delta"] == []


async def test_cancel_from_another_client(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai", reply=LONG_REPLY, chunk_delay=0.05)
    pid = await add_provider(client, fake)
    a = Inbox(client)
    _, future = client.start("chat/send", {"providerId": pid, "message": "go"})
    await a.wait(lambda i: len(i.deltas()) >= 3)
    chat_id = a.deltas()[0]["chatId"]

    b_client = await clients()
    b = Inbox(b_client)
    await b_client.request("chat/attach", {"chatId": chat_id, "fromSeq": 0})
    await b.wait(lambda i: len(i.deltas(chat_id)) >= 5)
    cancelled_at = time.time()
    assert await b_client.request("chat/cancel", {"chatId": chat_id}) == {"chatId": chat_id, "cancelled": True}

    result = (await asyncio.wait_for(future, 5))["result"]
    assert result["status"] == "cancelled" and result["error"] is None
    assert result["text"] == text(a.deltas(chat_id)) and result["text"] in prefixes(LONG_REPLY)
    gone = await fake.wait_for_disconnect_async(3.0)
    assert gone is not None and gone["at"] - cancelled_at < 1.0
    await b.wait(lambda i: "answered" in i.updates(chat_id))
    assert text(b.deltas(chat_id)) == result["text"]
    assert (await get(b_client, chat_id))["messages"][1]["status"] == "cancelled"
    # Nothing left to cancel.
    assert (await b_client.request("chat/cancel", {"chatId": chat_id}))["cancelled"] is False


async def test_detach_stops_the_deltas(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai", reply=MEDIUM_REPLY, chunk_delay=0.05)
    pid = await add_provider(client, fake)
    a = Inbox(client)
    _, future = client.start("chat/send", {"providerId": pid, "message": "go"})
    await a.wait(lambda i: len(i.deltas()) >= 2)
    chat_id = a.deltas()[0]["chatId"]

    b_client = await clients()
    b = Inbox(b_client)
    await b_client.request("chat/attach", {"chatId": chat_id})
    await b.wait(lambda i: len(i.deltas(chat_id)) >= 5)
    assert await b_client.request("chat/detach", {"chatId": chat_id}) == {"chatId": chat_id, "following": False}
    mark = b.mark()  # every delta sent before the detach answer is in by now
    result = (await asyncio.wait_for(future, 20))["result"]
    assert result["status"] == "complete"
    await b.wait(lambda i: "answered" in i.updates(chat_id), what="answered")  # still told about changes
    assert b.deltas(chat_id, since=mark) == []
    assert len(b.deltas(chat_id)) < len(pieces(MEDIUM_REPLY))


async def test_did_update_reaches_every_client(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    inboxes = [Inbox(client), Inbox(await clients()), Inbox(await clients())]
    r = await send(client, {"providerId": pid, "message": "hello"})
    chat_id = r["chatId"]
    for inbox in inboxes:
        await inbox.wait(lambda i: "answered" in i.updates(chat_id))
        assert inbox.updates(chat_id) == ["created", "message", "answered"]
    marks = [i.mark() for i in inboxes]
    await send(client, {"chatId": chat_id, "message": "again"})
    for inbox, mark in zip(inboxes, marks):
        await inbox.wait(lambda i: "answered" in i.updates(chat_id, since=mark))
        assert inbox.updates(chat_id, since=mark) == ["message", "answered"]
    # Only the sender and followers get the deltas; the others only the updates.
    assert inboxes[0].deltas(chat_id) and not inboxes[1].deltas(chat_id) and not inboxes[2].deltas(chat_id)


async def test_a_chat_answers_one_message_at_a_time(client: RawClient, clients, fakes) -> None:
    fake = fakes("openai", reply=MEDIUM_REPLY, chunk_delay=0.05)
    pid = await add_provider(client, fake)
    a = Inbox(client)
    _, future = client.start("chat/send", {"providerId": pid, "message": "go"})
    await a.wait(lambda i: len(i.deltas()) >= 1)
    chat_id = a.deltas()[0]["chatId"]
    other = await clients()
    err = await refused(other.request("chat/send", {"chatId": chat_id, "message": "me too"}))
    assert "already being answered" in err.message and err.data.get("hint")
    result = (await asyncio.wait_for(future, 20))["result"]
    assert result["status"] == "complete"
    detail = await get(other, chat_id)
    assert [m["text"] for m in detail["messages"]] == ["go", MEDIUM_REPLY]  # "me too" was not stored
    assert len(chat_bodies(fake)) == 1


# -- 6. usage -------------------------------------------------------------------------------------------


def _sum(results: list[dict[str, Any]]) -> dict[str, int]:
    reported = [r for r in results if r["usage"] is not None]
    return {
        "messages": len(results),
        "inputTokens": sum(r["usage"]["inputTokens"] for r in reported),
        "outputTokens": sum(r["usage"]["outputTokens"] for r in reported),
        "unreported": len(results) - len(reported),
    }


def _totals(row: dict[str, Any]) -> dict[str, int]:
    return {k: row[k] for k in ("messages", "inputTokens", "outputTokens", "unreported")}


async def test_usage_summary(client: RawClient, fakes) -> None:
    a = fakes("openai")
    b = fakes("openai", usage=False)
    pa = await add_provider(client, a, name="Counting", models=["gpt2", "gpt-4o-mini"])
    pb = await add_provider(client, b, name="Silent")

    c1 = [await send(client, {"providerId": pa, "model": "gpt2", "message": "one two three"})]
    c1.append(await send(client, {"chatId": c1[0]["chatId"], "message": "four five"}))
    c2 = [await send(client, {"providerId": pa, "model": "gpt-4o-mini", "message": "six"})]
    mark = time.time()
    c3 = [await send(client, {"providerId": pb, "message": "seven eight"})]
    c4 = [await send(client, {"providerId": pa, "model": "gpt2", "message": "nine ten eleven twelve"})]
    everything = c1 + c2 + c3 + c4
    assert all(r["status"] == "complete" for r in everything)
    assert c3[0]["usage"] is None and all(r["usage"] is not None for r in c1 + c2 + c4)
    # The fake's arithmetic, checked once: "one two three" in, "You said: one two three" out.
    assert c1[0]["usage"] == {"inputTokens": 3, "outputTokens": 5}

    summary = await client.request("usage/summary", {})
    assert _totals(summary["total"]) == _sum(everything)
    assert summary["total"]["unreported"] == 1
    providers = {r["providerId"]: _totals(r) for r in summary["providers"]}
    assert providers == {pa: _sum(c1 + c2 + c4), pb: _sum(c3)}
    models = {(r["providerId"], r["model"]): _totals(r) for r in summary["models"]}
    assert models == {(pa, "gpt2"): _sum(c1 + c4), (pa, "gpt-4o-mini"): _sum(c2), (pb, "gpt2"): _sum(c3)}
    chats = {r["chatId"]: (r["title"], _totals(r)) for r in summary["chats"]}
    assert chats == {
        c1[0]["chatId"]: ("one two three", _sum(c1)),
        c2[0]["chatId"]: ("six", _sum(c2)),
        c3[0]["chatId"]: ("seven eight", _sum(c3)),
        c4[0]["chatId"]: ("nine ten eleven twelve", _sum(c4)),
    }

    since = await client.request("usage/summary", {"since": mark})
    assert _totals(since["total"]) == _sum(c3 + c4)
    assert {r["chatId"] for r in since["chats"]} == {c3[0]["chatId"], c4[0]["chatId"]}
    until = await client.request("usage/summary", {"until": mark})
    assert _totals(until["total"]) == _sum(c1 + c2)

    only_a = await client.request("usage/summary", {"providerId": pa})
    assert _totals(only_a["total"]) == _sum(c1 + c2 + c4) and only_a["total"]["unreported"] == 0
    assert {r["providerId"] for r in only_a["providers"] + only_a["models"]} == {pa}
    only_b = await client.request("usage/summary", {"providerId": pb, "since": mark})
    assert _totals(only_b["total"]) == {"messages": 1, "inputTokens": 0, "outputTokens": 0, "unreported": 1}

    nothing = await client.request("usage/summary", {"since": time.time() + 3600})
    assert _totals(nothing["total"]) == {"messages": 0, "inputTokens": 0, "outputTokens": 0, "unreported": 0}
    assert nothing["providers"] == nothing["models"] == nothing["chats"] == []


# -- 7 (daemon side). a database from a newer Orchard -----------------------------------------------------


def _newer_db(env: dict[str, str]) -> Path:
    db = Path(env["ORCHARD_DATA"]) / "orchard.db"
    db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE future_things (x)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    return db


def _user_version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


async def test_a_database_from_a_newer_orchard_is_refused(daemon_process: Daemon) -> None:
    db = _newer_db(daemon_process.env)
    r = await asyncio.to_thread(daemon_process.cli, "serve", timeout=20)
    assert r.returncode != 0
    assert "newer Orchard" in r.stderr and "Upgrade Orchard" in r.stderr, r.stderr[-500:]
    assert not daemon_process.socket.exists()
    assert _user_version(db) == SCHEMA_VERSION + 1  # left as it was


async def test_a_database_from_a_newer_orchard_is_refused_without_a_traceback(daemon_process: Daemon) -> None:
    _newer_db(daemon_process.env)
    r = await asyncio.to_thread(daemon_process.cli, "serve", timeout=20)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr[-300:]
    assert len(r.stderr.strip().splitlines()) <= 3, r.stderr


# -- 8. the command line ------------------------------------------------------------------------------------


async def cli(daemon: Daemon, *args: str) -> Any:
    return await asyncio.to_thread(daemon.cli, *args)


async def test_cli_chat_continue_and_history(daemon: Daemon, client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake, name="Local")

    r = await cli(daemon, "chat", "-p", pid, "hello there")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "You said: hello there\n"
    assert "gpt2 via " + pid in r.stderr and "2 in / 4 out tokens" in r.stderr
    chat_id = re.search(r"chat (chat_\w+)", r.stderr).group(1)

    # --continue without an id continues the last chat, with the flag after the message too.
    r = await cli(daemon, "chat", "and again", "--continue")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "You said: and again\n" and f"chat {chat_id}" in r.stderr
    assert chat_bodies(fake)[-1]["messages"] == [user("hello there"), assistant("You said: hello there"),
                                                 user("and again")]
    # With an id; and the provider by name.
    r = await cli(daemon, "chat", "--continue", chat_id, "-p", "Local", "third time")
    assert r.returncode == 0, r.stderr
    assert len(chat_bodies(fake)[-1]["messages"]) == 5

    other = (await cli(daemon, "chat", "--json", "a separate walrus"))
    assert other.returncode == 0, other.stderr
    other_id = json.loads(other.stdout[other.stdout.index("{"):])["chatId"]

    r = await cli(daemon, "history", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "CHAT" in lines[0] and "TITLE" in lines[0]
    assert other_id in lines[1] and chat_id in lines[2]
    assert "hello there" in lines[2] and f"{pid}/gpt2" in lines[2] and " 6 " in lines[2]
    listed = json.loads((await cli(daemon, "history", "list", "--json")).stdout)
    assert [c["id"] for c in listed["chats"]] == [other_id, chat_id]

    r = await cli(daemon, "history", "show", chat_id)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    order = ["hello there", "[you]", "[gpt2]", "You said: hello there", "and again", "You said: and again",
             "third time", "You said: third time"]
    positions = [out.index(s) for s in order]
    assert positions == sorted(positions), out
    assert out.count("[you]") == 3 and out.count("[gpt2]") == 3
    assert "2 in / 4 out tokens" in out
    r = await cli(daemon, "history", "show")  # the last chat
    assert "a separate walrus" in r.stdout
    shown = json.loads((await cli(daemon, "history", "show", chat_id, "--json")).stdout)
    assert shown == await get(client, chat_id)

    r = await cli(daemon, "history", "search", "walrus")
    assert r.returncode == 0 and other_id in r.stdout and chat_id not in r.stdout
    r = await cli(daemon, "history", "search", "again")
    assert chat_id in r.stdout and other_id not in r.stdout
    r = await cli(daemon, "history", "search", "zebra")
    assert r.returncode == 0 and "No chat has all of those words." in r.stdout

    r = await cli(daemon, "history", "usage")
    assert r.returncode == 0, r.stderr
    summary = await client.request("usage/summary", {})
    t = summary["total"]
    assert f"{t['messages']} answers: {t['inputTokens']} input and {t['outputTokens']} output tokens" in r.stdout
    assert t["messages"] == 4 and re.search(rf"{re.escape(pid)}\s+gpt2\s+4\s", r.stdout), r.stdout
    assert json.loads((await cli(daemon, "history", "usage", "--json")).stdout) == summary

    r = await cli(daemon, "history", "delete", other_id)
    assert r.returncode == 0 and f"Deleted {other_id}." in r.stdout
    r = await cli(daemon, "history", "delete", other_id)
    assert r.returncode == 1 and other_id in r.stderr
    r = await cli(daemon, "history", "list")
    assert other_id not in r.stdout and chat_id in r.stdout
    r = await cli(daemon, "history", "delete", chat_id)
    assert r.returncode == 0
    r = await cli(daemon, "history", "list")
    assert "No chats yet" in r.stdout


async def test_cli_continue_the_last_chat_with_the_flag_first(daemon: Daemon, client: RawClient, fakes) -> None:
    fake = fakes("openai")
    pid = await add_provider(client, fake)
    assert (await cli(daemon, "chat", "-p", pid, "hello")).returncode == 0
    r = await cli(daemon, "chat", "--continue", "and again")
    assert r.returncode == 0, r.stderr
    assert chat_bodies(fake)[-1]["messages"] == [user("hello"), assistant("You said: hello"), user("and again")]
