"""PostgreSQL edges: the connection pool, versioned migrations and service heartbeats."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import asyncpg

log = logging.getLogger(__name__)

MIGRATION_LOCK = 0x45584348  # advisory lock id ("EXCH"): one migrator at a time


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL cannot be reached, or no pooled connection was free in time.

    Raised at the pool's edge (`ExchangePool`) so callers tell "try again later" from a bug
    without knowing which socket error, timeout or asyncpg class lies underneath. A
    `ConnectionError`, so code that already treats OS errors as transient keeps doing so."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        """What clients are told (`database_unavailable`)."""


UNAVAILABLE_SQLSTATES = ("08", "53", "57P01", "57P02", "57P03")
"""SQLSTATE prefixes that mean "not now" rather than "wrong": connection exceptions (08),
insufficient resources (53: disk full 53100, out of memory, too many connections), and the
server shutting down, crashed or starting up (57P01–57P03)."""


def unavailable_reason(exc: BaseException) -> str | None:
    """Why `exc` means the database cannot serve now (`disk_full`, `database_unavailable`),
    or None when it is an ordinary error (a bug, a constraint).

    Disk full is told apart because an operator fixes it differently (free space, not restart).
    """
    if isinstance(exc, DatabaseUnavailable):
        return exc.reason
    if isinstance(exc, asyncpg.DiskFullError):
        return "disk_full"
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk_full"
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return "database_unavailable" if state.startswith(UNAVAILABLE_SQLSTATES) else None
    if isinstance(exc, asyncpg.InterfaceError):
        # "connection is closed", "pool is closing": the server went away under a query
        text = str(exc)
        return "database_unavailable" if "clos" in text else None
    if isinstance(exc, ConnectionError):
        return "database_unavailable"
    if isinstance(exc, asyncpg.InternalClientError) and "cannot switch to state" in str(exc):
        # the server ended the session between the pool's check (`ended_by_server`) and the
        # query: asyncpg is still "consuming" the server's goodbye (asyncpg issues #784, #1069)
        return "database_unavailable"
    return None


class ExchangePool(asyncpg.Pool):  # type: ignore[misc]
    """asyncpg's pool with a default acquire timeout, and connection failures turned into
    `DatabaseUnavailable` where a connection is taken.

    Why: `pool.fetchval(...)` and friends acquire without a timeout, so with every connection
    busy (or PostgreSQL blackholed) a request would wait as long as its client does; and a
    refused connection surfaces as a bare `OSError` that looks like any other bug. Holders whose
    connection died are reconnected by asyncpg on their next acquire, so the pool recovers by
    itself once PostgreSQL is back."""

    acquire_timeout: float | None = None
    """Seconds to wait for a connection when the caller gives none (None: forever)."""

    def acquire(self, *, timeout: float | None = None) -> Any:
        """A connection, waiting at most `timeout` (default `acquire_timeout`)."""
        return super().acquire(timeout=self.acquire_timeout if timeout is None else timeout)

    async def _acquire(self, timeout: float | None) -> Any:  # noqa: ASYNC109 (asyncpg's own)
        """A pooled connection the server has not ended; see `ended_by_server` for why."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        for _ in range(self.get_max_size() + 1):  # every idle one may have been ended
            left = None if deadline is None else max(0.0, deadline - loop.time())
            proxy = await self._acquire_checked(left)
            con = proxy._con
            if not ended_by_server(con):
                return proxy
            log.warning("pooled connection ended by the server; reconnecting")
            con.terminate()  # returns the holder to the pool, which reconnects it
        raise DatabaseUnavailable("database_unavailable", "the server keeps ending connections")

    async def _acquire_checked(self, timeout: float | None) -> Any:  # noqa: ASYNC109
        try:
            return await super()._acquire(timeout)
        except TimeoutError as exc:  # every connection busy, or connecting took too long
            raise DatabaseUnavailable(
                "database_unavailable", f"no database connection within {timeout}s"
            ) from exc
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
            raise DatabaseUnavailable("database_unavailable", f"cannot connect: {exc!r}") from exc


def ended_by_server(con: asyncpg.Connection) -> bool:
    """Whether the server has closed `con`'s socket though asyncpg has not noticed yet.

    Why: a server that ends a session (fast shutdown, `pg_terminate_backend`, idle timeouts)
    sends an ErrorResponse (57P01) and closes. asyncpg reads that message on an *idle*
    connection as a protocol error and switches to "consuming an error"; the end of the socket
    is only seen on a later turn of the event loop. A pool that hands the connection out in
    between makes the next query fail with `InternalClientError: cannot switch to state 11;
    another operation (2) is in progress` (asyncpg issues #784, #1069): a text/plain 500, or an
    event stream that ends with an exception, instead of 503. The end of the socket is already
    in the kernel by then, so one non-blocking peek before handing a connection out tells."""
    transport = getattr(con, "_transport", None)
    raw = transport.get_extra_info("socket") if transport is not None else None
    if raw is None:
        return False
    sock = socket.socket(raw.family, raw.type, fileno=raw.fileno())  # asyncio's wrapper has no recv
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except (BlockingIOError, InterruptedError):
        return False  # nothing pending: the connection is as good as it looks
    except OSError:
        return True  # reset by the peer
    finally:
        sock.detach()  # the descriptor stays asyncpg's


async def connect_pool(
    dsn: str,
    min_size: int = 1,
    max_size: int = 10,
    *,
    acquire_timeout: float | None = None,
    connect_timeout: float = 60.0,
) -> asyncpg.Pool:
    """A pool whose connections speak UTF-8 and UTC; JSON columns come back as Python objects.

    `acquire_timeout` bounds the wait for a free connection (`ExchangePool`); `connect_timeout`
    bounds opening one (asyncpg's default is 60 s)."""
    pool = ExchangePool(
        dsn,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        min_size=min_size,
        max_size=max_size,
        max_queries=50000,
        max_inactive_connection_lifetime=300.0,
        loop=None,
        connect=None,
        setup=None,
        init=init_connection,
        reset=None,
        server_settings=SERVER_SETTINGS,
        timeout=connect_timeout,
    )
    pool.acquire_timeout = acquire_timeout
    await pool
    return pool


SERVER_SETTINGS = {"timezone": "UTC", "client_encoding": "UTF8"}


async def connect(dsn: str) -> asyncpg.Connection:
    """One dedicated connection, set up exactly as the pool's are."""
    conn = await asyncpg.connect(dsn, server_settings=SERVER_SETTINGS)
    await init_connection(conn)
    return conn


async def init_connection(conn: asyncpg.Connection) -> None:
    """JSON and JSONB columns travel as Python objects, non-ASCII text kept as characters."""
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=_dumps, decoder=json.loads, schema="pg_catalog")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every packaged migration, in version order."""
    folder = resources.files("services.ledger") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def forget_readiness(dsn: str) -> None:
    """Mark every service not ready, before a supervisor starts them all: a ready row left by
    the previous run stays fresh for `stale_after_seconds`, and /healthz (and `exchange up`'s
    own wait for it) took it for the new process's, green before the new processes were."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE service_heartbeats SET ready = false WHERE ready")
    finally:
        await conn.close()


async def migrate(dsn: str) -> list[str]:
    """Apply every migration not yet applied, each in its own transaction; return their names.

    Safe to call from every service at start: an advisory lock serialises concurrent callers,
    and a changed file that was already applied is refused (its checksum is recorded)."""
    conn = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for version, name, sql in migration_files():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(f"migration {name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    version,
                    name,
                    checksum,
                )
            applied.append(name)
            log.info("migration applied", extra={"migration": name})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await conn.close()
    return applied


class Heartbeat:
    """Records in PostgreSQL that a service is alive and whether it is ready to serve."""

    def __init__(self, pool: asyncpg.Pool, service: str, interval: float) -> None:
        self.pool = pool
        self.service = service
        self.interval = interval
        self.ready = False
        self.details: dict[str, Any] = {}
        self.started_at = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        """Write one heartbeat row now."""
        await self.pool.execute(
            "INSERT INTO service_heartbeats (service, pid, started_at, beat_at, ready, details)"
            " VALUES ($1, $2, $3, now(), $4, $5)"
            " ON CONFLICT (service) DO UPDATE SET pid = $2, started_at = $3, beat_at = now(),"
            " ready = $4, details = $5",
            self.service,
            os.getpid(),
            self.started_at,
            self.ready,
            self.details,
        )

    def start(self) -> None:
        """Beat every `interval` seconds until `stop()`; a failed beat is logged, not fatal."""

        async def loop() -> None:
            while True:
                try:
                    await self.beat()
                except Exception as exc:  # the database may be restarting: keep trying
                    log.warning("heartbeat failed", extra={"error": repr(exc)})
                await asyncio.sleep(self.interval)

        self._task = asyncio.get_running_loop().create_task(loop())

    async def stop(self) -> None:
        """Stop beating and mark the service not ready."""
        if self._task:
            self._task.cancel()
        self.ready = False
        with contextlib.suppress(Exception):  # shutting down: the database may be gone
            await self.beat()
