"""The chat store on a real SQLite file: migrations, refusal of a newer schema, file modes, crash recovery.

No daemon here: each test opens `Store` on a temp file, and builds older
databases with plain `sqlite3` and `migrate(conn, version)`, the way an older
Orchard left them.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchard.errors import OrchardError
from orchard.chats.store import SCHEMA_VERSION, ChatRow, MessageRow, Store, migrate

class Stores:
    """Stores opened on paths; every one still open is closed at teardown."""

    def __init__(self) -> None:
        self.opened: list[Store] = []

    def __call__(self, path: Path) -> tuple[Store, int]:
        store = Store(path)
        self.opened.append(store)
        return store, store.open()

    def close(self, store: Store) -> None:
        self.opened.remove(store)
        store.close()


@pytest.fixture
def stores() -> Iterator[Stores]:
    s = Stores()
    yield s
    for store in list(s.opened):
        s.close(store)


def user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def names(path: Path, type: str) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = ?", (type,))}
    finally:
        conn.close()


T0 = 1_700_000_000.0
OLD_MESSAGES = [
    # id, position, role, text, status, provider, model, input, output
    ("m1", 0, "user", "Tell me about the purple elephant", "complete", None, None, None, None),
    ("m2", 1, "assistant", "Elephants are large; purple ones are rare.", "complete", "vllm", "gpt2", 6, 7),
    ("m3", 2, "user", "And giraffes?", "complete", None, None, None, None),
    ("m4", 3, "assistant", "Giraffes have long necks and", "streaming", "vllm", "gpt2", None, None),
]


def old_database(path: Path, version: int = 1) -> None:
    """A database as an Orchard at schema ``version`` left it, after a crash mid-answer."""
    conn = sqlite3.connect(path)
    assert migrate(conn, version) == 0
    assert conn.execute("PRAGMA user_version").fetchone()[0] == version
    conn.execute(
        "INSERT INTO chats (id, title, provider_id, model, system, params, created_at, updated_at) "
        "VALUES ('chat_old', 'Tell me about the purple elephant', 'vllm', 'gpt2', 'Be brief.', "
        "'{\"temperature\": 0.5}', ?, ?)",
        (T0, T0 + 30),
    )
    for i, (mid, pos, role, text, status, pid, model, inp, out) in enumerate(OLD_MESSAGES):
        conn.execute(
            "INSERT INTO messages (id, chat_id, position, role, text, status, provider_id, model, input_tokens, "
            "output_tokens, created_at, updated_at) VALUES (?, 'chat_old', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (mid, pos, role, text, status, pid, model, inp, out, T0 + i, T0 + i),
        )
    conn.commit()
    conn.close()


async def test_a_version_1_database_is_migrated_and_searchable(tmp_path: Path, stores) -> None:
    path = tmp_path / "orchard.db"
    old_database(path, 1)
    assert "messages_fts" not in names(path, "table")

    store, interrupted = stores(path)
    assert interrupted == 1  # m4 was streaming when that Orchard stopped
    assert user_version(path) == SCHEMA_VERSION

    chat = await store.get_chat("chat_old")
    assert chat is not None and chat.message_count == 4
    assert (chat.title, chat.provider_id, chat.model, chat.system) == (
        "Tell me about the purple elephant", "vllm", "gpt2", "Be brief.")
    assert chat.params == {"temperature": 0.5} and (chat.created_at, chat.updated_at) == (T0, T0 + 30)

    messages = await store.messages("chat_old")
    assert [(m.id, m.position, m.role, m.text) for m in messages] == [
        (mid, pos, role, text) for mid, pos, role, text, *_ in OLD_MESSAGES]
    assert [m.status for m in messages] == ["complete", "complete", "complete", "error"]
    assert messages[3].error["kind"] == "interrupted" and messages[3].error["message"]
    assert (messages[1].input_tokens, messages[1].output_tokens) == (6, 7)
    assert (messages[1].provider_id, messages[1].model) == ("vllm", "gpt2")

    async def search(query: str) -> list[str]:
        return [c.id for c in await store.list_chats(limit=10, query=query)]

    # The old messages were indexed by the migration.
    assert await search("purple elephant") == ["chat_old"]
    assert await search("giraffes") == ["chat_old"]
    assert await search("necks") == ["chat_old"]  # the interrupted answer's kept text
    assert await search("rare eleph") == ["chat_old"]  # prefix of the last word
    assert await search("zebra") == []
    # And new writes are indexed by the triggers.
    await store.add_message(MessageRow("m5", "chat_old", 4, "user", "What about a zebra?", "", "complete",
                                       None, None, None))
    assert await search("zebra") == ["chat_old"]
    assert [c.id for c in await store.list_chats(limit=10)] == ["chat_old"]


async def test_each_migration_step_keeps_the_data(tmp_path: Path, stores) -> None:
    for start in range(SCHEMA_VERSION + 1):
        path = tmp_path / f"v{start}.db"
        if start:
            old_database(path, start)
        store, _ = stores(path)
        assert user_version(path) == SCHEMA_VERSION
        if start:
            assert len(await store.messages("chat_old")) == 4
            assert [c.id for c in await store.list_chats(limit=5, query="elephant")] == ["chat_old"]
        else:
            assert await store.list_chats(limit=5) == []


async def test_reopening_a_current_database_changes_nothing(tmp_path: Path, stores) -> None:
    path = tmp_path / "orchard.db"
    old_database(path, 1)
    store, interrupted = stores(path)
    assert interrupted == 1
    before = [m.__dict__ for m in await store.messages("chat_old")]
    stores.close(store)
    again, interrupted = stores(path)
    assert interrupted == 0
    assert [m.__dict__ for m in await again.messages("chat_old")] == before
    assert user_version(path) == SCHEMA_VERSION


def test_a_failed_migration_leaves_the_old_schema(tmp_path: Path) -> None:
    # A version-1 database where migration 2 fails at its last statement (the name of
    # its index is taken): the step is one transaction, so nothing of it is left.
    path = tmp_path / "orchard.db"
    old_database(path, 1)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE messages_by_time (x)")
    conn.commit()
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert not conn.in_transaction
    conn.close()
    assert names(path, "trigger") == set()
    assert "messages_fts" not in names(path, "table")
    assert names(path, "index") >= {"messages_by_chat", "chats_by_update"}
    assert user_version(path) == 1


async def test_a_database_from_a_newer_orchard_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "orchard.db"
    old_database(path, SCHEMA_VERSION)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()

    store = Store(path)
    try:
        with pytest.raises(OrchardError, match=r"newer Orchard .*Upgrade Orchard") as err:
            store.open()
        assert f"schema {SCHEMA_VERSION + 1}" in str(err.value) and f"knows up to {SCHEMA_VERSION}" in str(err.value)
    finally:
        store.close()
    # Untouched: same version, same rows, the streaming answer not "recovered" by an Orchard that cannot read it.
    assert user_version(path) == SCHEMA_VERSION + 1
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT status FROM messages WHERE id = 'm4'").fetchone() == ("streaming",)
        assert conn.execute("SELECT COUNT(*) FROM messages").fetchone() == (4,)
    finally:
        conn.close()
    with sqlite3.connect(path) as conn, pytest.raises(OrchardError, match="newer Orchard"):
        migrate(conn)


async def test_the_files_are_private_whatever_the_umask(tmp_path: Path, stores) -> None:
    path = tmp_path / "data" / "orchard" / "orchard.db"
    old = os.umask(0)
    try:
        store, _ = stores(path)
        await store.create_chat(ChatRow("c1", "t", None, None, None, {}, time.time(), time.time()))
        await store.add_message(MessageRow("m1", "c1", 0, "user", "secret", "", "complete", None, None, None))
    finally:
        os.umask(old)
    assert mode(path.parent) == 0o700
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert p.exists(), p
        assert mode(p) == 0o600, (p, oct(mode(p)))


async def test_an_existing_readable_database_is_made_private(tmp_path: Path, stores) -> None:
    path = tmp_path / "orchard.db"
    old_database(path, 1)
    path.chmod(0o644)
    stores(path)
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        assert mode(p) == 0o600, (p, oct(mode(p)))


async def test_an_answer_left_streaming_is_interrupted_with_its_checkpointed_text(tmp_path: Path, stores) -> None:
    path = tmp_path / "orchard.db"
    store, interrupted = stores(path)
    assert interrupted == 0
    now = time.time()
    await store.create_chat(ChatRow("c1", "hi", "p", "m", None, {}, now, now))
    await store.add_message(MessageRow("u1", "c1", 0, "user", "hi", "", "complete", None, None, None))
    await store.add_message(MessageRow("a1", "c1", 1, "assistant", "", "", "streaming", None, "p", "m"))
    store.checkpoint("a1", "Once upon", "thinking").result(5)
    store.checkpoint("a1", "Once upon a time", "thinking hard").result(5)
    stores.close(store)  # no finish_message: as if the daemon died

    store, interrupted = stores(path)
    assert interrupted == 1
    u, a = await store.messages("c1")
    assert (u.status, u.text) == ("complete", "hi")
    assert (a.status, a.text, a.reasoning) == ("error", "Once upon a time", "thinking hard")
    assert a.error["kind"] == "interrupted"
    assert [c.id for c in await store.list_chats(limit=5, query="time")] == ["c1"]
    assert await store.list_chats(limit=5, query="upon time zebra") == []


async def test_the_search_index_follows_updates_and_deletes(tmp_path: Path, stores) -> None:
    path = tmp_path / "orchard.db"
    store, _ = stores(path)
    now = time.time()
    for cid in ("c1", "c2"):
        await store.create_chat(ChatRow(cid, cid, None, None, None, {}, now, now))
    await store.add_message(MessageRow("a1", "c1", 0, "assistant", "draft words", "", "streaming", None, None, None))
    await store.add_message(MessageRow("a2", "c2", 0, "user", "walrus", "", "complete", None, None, None))
    store.checkpoint("a1", "final answer", "").result(5)

    async def search(q: str) -> list[str]:
        return [c.id for c in await store.list_chats(limit=5, query=q)]

    assert await search("draft") == []
    assert await search("final") == ["c1"]
    assert await store.delete_chat("c1") is True
    assert await store.messages("c1") == []  # the messages went with the chat
    assert await search("final") == []
    assert await search("walrus") == ["c2"]
    assert await store.delete_chat("c1") is False

    def check(conn: sqlite3.Connection) -> list:
        conn.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
        return [tuple(r) for r in conn.execute("SELECT COUNT(*) FROM messages_fts")]

    assert await store.run(check) == [(1,)]



async def test_only_answers_whose_daemon_is_gone_are_interrupted(tmp_path: Path, stores) -> None:
    """Several daemons may share the data dir (a --stdio one beside the shared one)."""
    path = tmp_path / "orchard.db"
    store, _ = stores(path)
    now = time.time()
    alive = subprocess.Popen(["sleep", "60"])  # stands in for another daemon, still streaming
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        await store.create_chat(ChatRow("c1", "hi", "p", "m", None, {}, now, now))
        for mid, pos, owner in (("a-live", 0, alive.pid), ("a-dead", 1, dead.pid), ("a-old", 2, None)):
            await store.add_message(
                MessageRow(mid, "c1", pos, "assistant", "so far", "", "streaming", None, "p", "m", owner_pid=owner)
            )
        stores.close(store)
        store, interrupted = stores(path)
        assert interrupted == 2
        status = {m.id: m.status for m in await store.messages("c1")}
        assert status == {"a-live": "streaming", "a-dead": "error", "a-old": "error"}
    finally:
        alive.kill()
        alive.wait()


async def test_paging_loses_no_chat_updated_at_the_same_instant(tmp_path: Path, stores) -> None:
    store, _ = stores(tmp_path / "orchard.db")
    for i in range(5):
        await store.create_chat(ChatRow(f"c{i}", f"chat {i}", "p", "m", None, {}, T0, T0))
    seen, before, before_id = [], None, None
    while True:
        page = await store.list_chats(limit=2, before=before, before_id=before_id)
        seen += [c.id for c in page]
        if len(page) < 2:
            break
        before, before_id = page[-1].updated_at, page[-1].id
    assert seen == ["c4", "c3", "c2", "c1", "c0"]
