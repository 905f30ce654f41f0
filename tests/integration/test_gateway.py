"""The gateway against real PostgreSQL and a real broker: durable before it answers,
idempotent on retries, and silent (nothing written) on refusal."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from fastapi.testclient import TestClient

from schemas.codec import decode
from services.embedded.broker import EmbeddedBroker
from services.gateway.app import create_app
from services.platform.kafka import ensure_topics, read_all
from services.settings import Settings
from tests import factories as f

pytestmark = pytest.mark.integration


@pytest.fixture
def client(broker: EmbeddedBroker, database_url: str) -> Iterator[TestClient]:
    ensure_topics(broker.bootstrap)
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url)
    with TestClient(create_app(settings)) as c:
        yield c


def postings_count(dsn: str) -> int:
    async def q() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM postings"))
        finally:
            await conn.close()

    return asyncio.run(q())


def test_an_accepted_need_is_in_postgresql_and_on_its_topic(
    client: TestClient, broker: EmbeddedBroker, database_url: str
) -> None:
    r = client.post("/v1/needs", json=f.volunteer_need(), headers={"X-Exchange-Org": "jiangdong"})
    assert r.status_code == 202
    body = r.json()
    assert postings_count(database_url) == 1
    [record] = list(read_all(broker.bootstrap, ["needs.postings"]))
    assert record.event_id == uuid.UUID(body["posting_id"])
    assert record.key == body["need_id"].encode()
    posting = decode(record.value)
    assert posting.actor.org_id == "jiangdong"
    assert posting.payload.need.title == "银发助餐：周六午餐送餐上门"  # type: ignore[attr-defined]


def test_the_same_idempotency_key_and_body_returns_the_original_answer(
    client: TestClient, database_url: str
) -> None:
    headers = {"X-Exchange-Org": "jiangdong", "Idempotency-Key": "need-42"}
    first = client.post("/v1/needs", json=f.volunteer_need(), headers=headers)
    again = client.post("/v1/needs", json=f.volunteer_need(), headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert postings_count(database_url) == 1


def test_the_same_key_with_another_body_is_refused_and_writes_nothing(
    client: TestClient, database_url: str
) -> None:
    headers = {"X-Exchange-Org": "jiangdong", "Idempotency-Key": "need-43"}
    client.post("/v1/needs", json=f.volunteer_need(), headers=headers)
    r = client.post("/v1/needs", json=f.volunteer_need(volunteers_needed=3), headers=headers)
    assert r.status_code == 409
    assert postings_count(database_url) == 1


def test_keys_are_per_organisation(client: TestClient, database_url: str) -> None:
    client.post(
        "/v1/needs",
        json=f.volunteer_need(),
        headers={"X-Exchange-Org": "a", "Idempotency-Key": "k"},
    )
    client.post(
        "/v1/needs",
        json=f.volunteer_need(),
        headers={"X-Exchange-Org": "b", "Idempotency-Key": "k"},
    )
    assert postings_count(database_url) == 2


def test_invalid_input_names_every_field_and_writes_nothing(
    client: TestClient, broker: EmbeddedBroker, database_url: str
) -> None:
    bad = f.pledge(skills=[], weekly_hour_limit=99)
    r = client.post("/v1/pledges", json=bad, headers={"X-Exchange-Org": "x"})
    assert r.status_code == 422
    detail = {e["field"]: e for e in r.json()["detail"]}
    assert set(detail) == {"skills", "weekly_hour_limit"}
    assert detail["weekly_hour_limit"]["value_type"] == "integer"
    assert "60" in detail["weekly_hour_limit"]["reason"]  # says why: the limit
    assert postings_count(database_url) == 0
    assert list(read_all(broker.bootstrap, ["pledges.postings"])) == []


def test_a_missing_organisation_header_is_refused(client: TestClient, database_url: str) -> None:
    r = client.post("/v1/needs", json=f.volunteer_need())
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "header.X-Exchange-Org"
    assert postings_count(database_url) == 0
