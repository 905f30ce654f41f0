"""What the HTTP tests share: the gateway app against the test's broker and database, and a
way to register an organisation and get its token."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

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
