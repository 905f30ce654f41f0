"""Fixtures that start the real parts: Tansu on a free port, embedded PostgreSQL, fresh databases.

Integration and end-to-end tests never skip for missing infrastructure: they start it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from services.embedded.broker import EmbeddedBroker
from services.embedded.postgres import EmbeddedPostgres
from services.platform.db import migrate


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """One embedded PostgreSQL server for the session; each test gets its own database."""
    server = EmbeddedPostgres.start(tmp_path_factory.mktemp("pg") / "data")
    asyncio.run(_no_fsync(server.admin_url))
    yield server
    server.stop()


async def _no_fsync(admin_url: str) -> None:
    """The session's server holds throwaway databases: its writes need not be forced to the
    disk (`fsync = off`). That matters only if the machine itself crashes; a PostgreSQL that
    is killed loses nothing committed (tests that kill PostgreSQL start servers of their own,
    and the exchange's embedded PostgreSQL keeps its defaults)."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("ALTER SYSTEM SET fsync = off")
        await conn.execute("SELECT pg_reload_conf()")
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def migrated_template(postgres: EmbeddedPostgres) -> str:
    """A database migrated once per session, that each test's database is copied from.

    Copying it (`CREATE DATABASE … TEMPLATE`) takes a fraction of applying every migration
    again; the copy is the same schema, `schema_migrations` rows included. Nothing connects to
    it after this fixture (PostgreSQL copies only a template no one is connected to)."""
    name = f"template_{uuid.uuid4().hex[:12]}"
    asyncio.run(_new_database(postgres, name, "template0 ENCODING 'UTF8'"))
    return name


@pytest.fixture
def database_url(postgres: EmbeddedPostgres, migrated_template: str) -> str:
    """A new, migrated database on the session's server (a copy of the migrated template)."""
    # migrating the copy is a no-op: every migration is applied, checksums match
    return asyncio.run(
        _new_database(postgres, f"t_{uuid.uuid4().hex[:12]}", f'"{migrated_template}"')
    )


async def _new_database(postgres: EmbeddedPostgres, name: str, template: str) -> str:
    """Create database `name` on the session's server from `template` (SQL after TEMPLATE),
    migrate it, and return its URL."""
    conn = await asyncpg.connect(postgres.admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE {template}')
    finally:
        await conn.close()
    url = postgres.admin_url.replace("/postgres?", f"/{name}?")
    await migrate(url)
    return url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A fresh Tansu broker on a free port (memory only, so every test starts empty)."""
    b = EmbeddedBroker.start(tmp_path / "broker.log")
    yield b
    b.process.kill()  # SIGKILL: instant; a graceful stop waits ~6 s for clients
    b.process.wait()


@pytest.fixture
def start_broker(tmp_path: Path) -> Iterator[Callable[[], EmbeddedBroker]]:
    """Start extra brokers in a test (e.g. to restore into); all are killed afterwards."""
    started: list[EmbeddedBroker] = []

    def start() -> EmbeddedBroker:
        b = EmbeddedBroker.start(tmp_path / f"broker-{len(started)}.log")
        started.append(b)
        return b

    yield start
    for b in started:
        b.process.kill()
        b.process.wait()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection to the test's database."""
    from services.platform.db import connect

    conn = await connect(database_url)
    yield conn
    await conn.close()
