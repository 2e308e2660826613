"""Chat history on disk: SQLite (WAL) in the data dir, readable only by the user.

Owns the database: its schema and versioned migrations (``PRAGMA
user_version``), and every read and write of chats and messages. All of it
runs on one dedicated thread, so the event loop never waits on the disk:
``await store.x(...)`` hands the work to that thread; ``store.submit(...)``
queues a write without waiting (checkpoints of a streaming answer), and
because there is one thread, writes land in the order they were made.

A message is written when it starts (the user's before the request is made,
the answer as an empty ``streaming`` row) and the answer is checkpointed
while it streams, so a crash loses at most the last checkpoint interval.
On open, answers left ``streaming`` by a crash are marked ``error`` with the
kind ``interrupted``; their text is kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from orchard.errors import OrchardError

T = TypeVar("T")

# Each entry moves the schema from version i to i + 1. Never edit one that has
# shipped: add a new one.
MIGRATIONS: list[str] = [
    # 1: chats and their messages
    """
    CREATE TABLE chats (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        provider_id TEXT,
        model TEXT,
        system TEXT,
        params TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id TEXT PRIMARY KEY,
        chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
        position INTEGER NOT NULL,
        role TEXT NOT NULL,
        text TEXT NOT NULL DEFAULT '',
        reasoning TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL,
        error TEXT,
        provider_id TEXT,
        model TEXT,
        input_tokens INTEGER,
        output_tokens INTEGER,
        first_token_ms INTEGER,
        total_ms INTEGER,
        tokens_per_second REAL,
        estimated INTEGER,
        finish_reason TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX messages_by_chat ON messages(chat_id, position);
    CREATE INDEX chats_by_update ON chats(updated_at);
    """,
    # 2: full-text search over message text, kept in step by triggers
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', content_rowid='rowid');
    INSERT INTO messages_fts(rowid, text) SELECT rowid, text FROM messages;
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.rowid, new.text);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
        INSERT INTO messages_fts(rowid, text) VALUES (new.rowid, new.text);
    END;
    CREATE INDEX messages_by_time ON messages(created_at);
    """,
    # 3: which daemon process is streaming an answer, so that only answers whose
    # daemon is gone are marked interrupted (several daemons may share the data dir)
    """
    ALTER TABLE messages ADD COLUMN owner_pid INTEGER;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Bring the database to ``target``; return the version it was at."""
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current > SCHEMA_VERSION:
        raise OrchardError(
            f"The chat database is from a newer Orchard (schema {current}; this one knows up to {SCHEMA_VERSION}).",
            hint="Upgrade Orchard, or point ORCHARD_DATA elsewhere. The database was not changed.",
        )
    for version in range(current, target):
        # Each step in one transaction: a failed migration leaves the old schema intact.
        try:
            conn.executescript("BEGIN;" + MIGRATIONS[version] + f";PRAGMA user_version = {version + 1};COMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
    return current


@dataclass
class ChatRow:
    id: str
    title: str
    provider_id: str | None
    model: str | None
    system: str | None
    params: dict[str, Any]
    created_at: float
    updated_at: float
    message_count: int = 0


@dataclass
class MessageRow:
    id: str
    chat_id: str
    position: int
    role: str
    text: str
    reasoning: str
    status: str
    error: dict[str, Any] | None
    provider_id: str | None
    model: str | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    first_token_ms: int | None = None
    total_ms: int | None = None
    tokens_per_second: float | None = None
    estimated: bool | None = None
    finish_reason: str | None = None
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    #: the daemon process streaming this answer (while its status is `streaming`)
    owner_pid: int | None = None


_MESSAGE_COLUMNS = (
    "id, chat_id, position, role, text, reasoning, status, error, provider_id, model, input_tokens, "
    "output_tokens, first_token_ms, total_ms, tokens_per_second, estimated, finish_reason, created_at, updated_at, "
    "owner_pid"
)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-store")
        self._conn: sqlite3.Connection | None = None
        self._closed = False

    # -- plumbing ------------------------------------------------------------------

    def open(self) -> int:
        """Open (creating 0600 if needed), migrate, recover; return how many answers were interrupted."""
        return self._executor.submit(self._open).result()

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.path.exists():
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # survives a crash of the daemon; fsync at checkpoints
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")
        migrate(conn)
        for suffix in ("", "-wal", "-shm"):
            p = Path(f"{self.path}{suffix}")
            if p.exists():
                p.chmod(0o600)
        self._conn = conn
        return self._call(_recover)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def _close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        self._executor.submit(_close).result()
        self._executor.shutdown(wait=True)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def submit(self, fn: Callable[[sqlite3.Connection], Any]) -> Future:
        """Queue a write and return at once (for checkpoints on the streaming path)."""
        return self._executor.submit(self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one transaction (the connection is in autocommit mode otherwise)."""
        conn = self._conn
        assert conn is not None, "store not open"
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    # -- chats -------------------------------------------------------------------------

    async def create_chat(self, chat: ChatRow) -> None:
        await self.run(
            lambda c: c.execute(
                "INSERT INTO chats VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (chat.id, chat.title, chat.provider_id, chat.model, chat.system, json.dumps(chat.params),
                 chat.created_at, chat.updated_at),
            )  # fmt: skip
        )

    async def update_chat(self, chat_id: str, **fields: Any) -> None:
        if "params" in fields:
            fields["params"] = json.dumps(fields["params"])
        fields.setdefault("updated_at", time.time())
        sets = ", ".join(f"{k} = ?" for k in fields)
        await self.run(lambda c: c.execute(f"UPDATE chats SET {sets} WHERE id = ?", (*fields.values(), chat_id)))

    async def get_chat(self, chat_id: str) -> ChatRow | None:
        def q(c: sqlite3.Connection) -> ChatRow | None:
            row = c.execute(
                "SELECT chats.*, (SELECT COUNT(*) FROM messages m WHERE m.chat_id = chats.id) AS n "
                "FROM chats WHERE id = ?",
                (chat_id,),
            ).fetchone()
            return _chat(row) if row else None

        return await self.run(q)

    async def last_chat(self) -> ChatRow | None:
        chats = await self.list_chats(limit=1)
        return chats[0] if chats else None

    async def list_chats(
        self, *, limit: int, before: float | None = None, before_id: str | None = None, query: str | None = None
    ) -> list[ChatRow]:
        """Newest first, ordered by (updated_at, id): a page boundary between chats
        updated at the same instant loses none of them when ``before_id`` is given."""

        def q(c: sqlite3.Connection) -> list[ChatRow]:
            where, args = [], []
            if before is not None and before_id is not None:
                where.append("(chats.updated_at < ? OR (chats.updated_at = ? AND chats.id < ?))")
                args += [before, before, before_id]
            elif before is not None:
                where.append("chats.updated_at < ?")
                args.append(before)
            if query:
                where.append(
                    "chats.id IN (SELECT m.chat_id FROM messages_fts f JOIN messages m ON m.rowid = f.rowid "
                    "WHERE messages_fts MATCH ?)"
                )
                args.append(fts_query(query))
            sql = (
                "SELECT chats.*, (SELECT COUNT(*) FROM messages m WHERE m.chat_id = chats.id) AS n FROM chats"
                + (" WHERE " + " AND ".join(where) if where else "")
                + " ORDER BY chats.updated_at DESC, chats.id DESC LIMIT ?"
            )
            return [_chat(r) for r in c.execute(sql, (*args, limit))]

        return await self.run(q)

    async def delete_chat(self, chat_id: str) -> bool:
        return await self.run(lambda c: c.execute("DELETE FROM chats WHERE id = ?", (chat_id,)).rowcount > 0)

    # -- messages ------------------------------------------------------------------------

    async def messages(self, chat_id: str) -> list[MessageRow]:
        return await self.run(
            lambda c: [
                _message(r)
                for r in c.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? ORDER BY position", (chat_id,)
                )
            ]
        )

    async def add_message(self, m: MessageRow) -> None:
        await self.run(lambda c: _insert_message(c, m))

    async def copy_messages(self, rows: list[MessageRow]) -> None:
        """Insert copies of messages (a fork); their chat becomes the most recently updated."""

        def q(c: sqlite3.Connection) -> None:
            for m in rows:
                _insert_message(c, m)
            if rows:
                c.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (time.time(), rows[0].chat_id))

        await self.run(q)

    def checkpoint(self, message_id: str, text: str, reasoning: str) -> Future:
        now = time.time()
        return self.submit(
            lambda c: c.execute(
                "UPDATE messages SET text = ?, reasoning = ?, updated_at = ? WHERE id = ?",
                (text, reasoning, now, message_id),
            )
        )

    async def finish_message(self, m: MessageRow) -> None:
        def q(c: sqlite3.Connection) -> None:
            c.execute(
                "UPDATE messages SET text = ?, reasoning = ?, status = ?, error = ?, input_tokens = ?, "
                "output_tokens = ?, first_token_ms = ?, total_ms = ?, tokens_per_second = ?, estimated = ?, "
                "finish_reason = ?, updated_at = ? WHERE id = ?",
                (m.text, m.reasoning, m.status, json.dumps(m.error) if m.error else None, m.input_tokens,
                 m.output_tokens, m.first_token_ms, m.total_ms, m.tokens_per_second,
                 None if m.estimated is None else int(m.estimated), m.finish_reason, time.time(), m.id),
            )  # fmt: skip
            c.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (time.time(), m.chat_id))

        await self.run(q)

    # -- usage ------------------------------------------------------------------------------

    async def usage(self, *, since: float | None, until: float | None, provider_id: str | None) -> dict[str, list]:
        def q(c: sqlite3.Connection) -> dict[str, list]:
            where = ["m.role = 'assistant'"]
            args: list[Any] = []
            if since is not None:
                where.append("m.created_at >= ?")
                args.append(since)
            if until is not None:
                where.append("m.created_at < ?")
                args.append(until)
            if provider_id is not None:
                where.append("m.provider_id = ?")
                args.append(provider_id)
            w = " AND ".join(where)
            sums = (
                "COUNT(*) AS messages, COALESCE(SUM(m.input_tokens), 0) AS input_tokens, "
                "COALESCE(SUM(m.output_tokens), 0) AS output_tokens, "
                "SUM(m.input_tokens IS NULL AND m.output_tokens IS NULL) AS unreported"
            )
            out = {
                "total": [dict(r) for r in c.execute(f"SELECT {sums} FROM messages m WHERE {w}", args)],
                "providers": [
                    dict(r)
                    for r in c.execute(
                        f"SELECT m.provider_id, {sums} FROM messages m WHERE {w} GROUP BY m.provider_id "
                        "ORDER BY output_tokens DESC",
                        args,
                    )
                ],
                "models": [
                    dict(r)
                    for r in c.execute(
                        f"SELECT m.provider_id, m.model, {sums} FROM messages m WHERE {w} "
                        "GROUP BY m.provider_id, m.model ORDER BY output_tokens DESC",
                        args,
                    )
                ],
                "chats": [
                    dict(r)
                    for r in c.execute(
                        f"SELECT m.chat_id, chats.title, {sums} FROM messages m JOIN chats ON chats.id = m.chat_id "
                        f"WHERE {w} GROUP BY m.chat_id ORDER BY output_tokens DESC LIMIT 100",
                        args,
                    )
                ],
            }
            return out

        return await self.run(q)


def _recover(c: sqlite3.Connection) -> int:
    """Mark answers left `streaming` by a daemon that is gone as interrupted; keep their text.

    Answers another live daemon is streaming (a --stdio one beside the shared
    one) are left alone. A row with our own pid is stale too: that pid
    belonged to a daemon that died before this one was given it.
    """
    error = json.dumps(
        {
            "kind": "interrupted",
            "message": "The daemon stopped while this answer was streaming; the text up to then is kept.",
        }
    )
    gone = [
        pid
        for (pid,) in c.execute("SELECT DISTINCT owner_pid FROM messages WHERE status = 'streaming'")
        if pid is None or pid == os.getpid() or not _alive(pid)
    ]
    n = 0
    for pid in gone:
        n += c.execute(
            "UPDATE messages SET status = 'error', error = ?, owner_pid = NULL "
            "WHERE status = 'streaming' AND owner_pid IS ?",
            (error, pid),
        ).rowcount
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: not one of our daemons
        return False
    return True


def fts_query(text: str) -> str:
    """A person's search words as an FTS5 query: every word must appear; the last may be a prefix."""
    words = [w.replace('"', '""') for w in text.split() if w.strip()]
    if not words:
        return '""'
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def _insert_message(c: sqlite3.Connection, m: MessageRow) -> None:
    c.execute(
        f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES ({', '.join('?' * 20)})",
        (m.id, m.chat_id, m.position, m.role, m.text, m.reasoning, m.status,
         json.dumps(m.error) if m.error else None, m.provider_id, m.model, m.input_tokens, m.output_tokens,
         m.first_token_ms, m.total_ms, m.tokens_per_second, None if m.estimated is None else int(m.estimated),
         m.finish_reason, m.created_at, m.updated_at, m.owner_pid),
    )  # fmt: skip
    c.execute("UPDATE chats SET updated_at = ? WHERE id = ?", (m.updated_at, m.chat_id))


def _chat(row: sqlite3.Row) -> ChatRow:
    return ChatRow(
        id=row["id"],
        title=row["title"],
        provider_id=row["provider_id"],
        model=row["model"],
        system=row["system"],
        params=json.loads(row["params"] or "{}"),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        message_count=row["n"],
    )


def _message(row: sqlite3.Row) -> MessageRow:
    data = dict(row)
    data["error"] = json.loads(data["error"]) if data["error"] else None
    data["estimated"] = None if data["estimated"] is None else bool(data["estimated"])
    return MessageRow(**data)
