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
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres: EmbeddedPostgres) -> str:
    """A new, migrated database on the session's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(postgres.admin_url)
        try:
            await conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        finally:
            await conn.close()
        await migrate(url)

    url = postgres.admin_url.replace("/postgres?", f"/{name}?")
    asyncio.run(create())
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
