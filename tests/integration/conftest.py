"""What the HTTP tests share: the gateway app against the test's broker and database, and a
way to register an organisation and get its token."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from services.embedded.broker import EmbeddedBroker
from services.gateway.app import create_app
from services.identity import create_organisation
from services.platform.db import connect
from services.platform.kafka import ensure_topics
from services.settings import Settings


def org_token(dsn: str, kind: OrgKind, name: str) -> str:
    """Register an organisation in 鼓楼区 and return its bearer token."""

    async def make() -> str:
        conn = await connect(dsn)
        try:
            return (await create_organisation(conn, kind, name, "鼓楼区", "江东街道"))[1]
        finally:
            await conn.close()

    return asyncio.run(make())


@pytest.fixture
def client(broker: EmbeddedBroker, database_url: str) -> Iterator[TestClient]:
    """The gateway in-process, on the test's own broker and database."""
    ensure_topics(broker.bootstrap)
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url)
    with TestClient(create_app(settings)) as c:
        yield c


def wait_until(condition: Callable[[], bool], within: float, what: str) -> float:
    """Poll `condition` until it holds, at most `within` seconds; return the seconds it took.
    A deadline, not a sleep: the test goes on the moment the condition holds."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within}s: {what}")
        time.sleep(0.02)
    return time.monotonic() - start


def query(dsn: str, sql: str, *args: Any) -> Any:
    """One value from the test's database, on a connection of its own."""

    async def q() -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(q())


def all_published(dsn: str) -> bool:
    """Whether the relay has published (and marked) every client's posting in the outbox.
    (The operator's `OrganisationRegistered` rows are swept a few seconds later: not these.)"""
    return bool(
        query(
            dsn,
            "SELECT count(*) = 0 FROM postings WHERE published_at IS NULL AND org_id <> 'operator'",
        )
    )
