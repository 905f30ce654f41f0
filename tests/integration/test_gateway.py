"""The gateway against real PostgreSQL and a real broker: durable before it answers,
idempotent on retries, and silent (nothing written) on refusal."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from fastapi.testclient import TestClient

from schemas.codec import decode
from schemas.messages import OrgKind
from services.embedded.broker import EmbeddedBroker
from services.platform.kafka import read_all
from tests import factories as f
from tests.integration.conftest import all_published, org_token, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def community(database_url: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '江东社区')}"}


def postings_count(dsn: str) -> int:
    async def q() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM postings WHERE org_id <> 'operator'")
            )
        finally:
            await conn.close()

    return asyncio.run(q())


def test_an_accepted_need_is_in_postgresql_and_on_its_topic(
    client: TestClient, broker: EmbeddedBroker, database_url: str, community: dict[str, str]
) -> None:
    r = client.post("/v1/needs", json=f.volunteer_need(), headers=community)
    assert r.status_code == 202
    body = r.json()
    assert postings_count(database_url) == 1
    # published by the relay right after the answer
    wait_until(lambda: all_published(database_url), 10, "the posting is published")
    [record] = list(read_all(broker.bootstrap, ["needs.postings"]))
    assert record.event_id == uuid.UUID(body["posting_id"])
    assert record.key == body["need_id"].encode()
    posting = decode(record.value)
    assert posting.actor.role.value == "community"
    assert posting.payload.need.title == "银发助餐：周六午餐送餐上门"  # type: ignore[attr-defined]


def test_the_same_idempotency_key_and_body_returns_the_original_answer(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    headers = community | {"Idempotency-Key": "need-42"}
    first = client.post("/v1/needs", json=f.volunteer_need(), headers=headers)
    again = client.post("/v1/needs", json=f.volunteer_need(), headers=headers)
    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert postings_count(database_url) == 1


def test_the_same_key_with_another_body_is_refused_and_writes_nothing(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    headers = community | {"Idempotency-Key": "need-43"}
    client.post("/v1/needs", json=f.volunteer_need(), headers=headers)
    r = client.post("/v1/needs", json=f.volunteer_need(volunteers_needed=3), headers=headers)
    assert r.status_code == 409
    assert postings_count(database_url) == 1


def test_keys_are_per_organisation(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    other = {"Authorization": f"Bearer {org_token(database_url, OrgKind.COMMUNITY, '永盛社区')}"}
    client.post("/v1/needs", json=f.volunteer_need(), headers=community | {"Idempotency-Key": "k"})
    client.post("/v1/needs", json=f.volunteer_need(), headers=other | {"Idempotency-Key": "k"})
    assert postings_count(database_url) == 2


def test_invalid_input_names_every_field_and_writes_nothing(
    client: TestClient, broker: EmbeddedBroker, database_url: str, community: dict[str, str]
) -> None:
    bad = f.money_need(amount=0, urgency="whenever")
    r = client.post("/v1/needs", json=bad, headers=community)
    assert r.status_code == 422
    detail = {e["field"]: e for e in r.json()["detail"]}
    assert set(detail) == {"amount.amount_minor", "urgency"}
    assert detail["amount.amount_minor"]["value_type"] == "integer"
    assert "greater than 0" in detail["amount.amount_minor"]["reason"]
    assert postings_count(database_url) == 0
    assert list(read_all(broker.bootstrap, ["needs.postings"])) == []


def test_no_token_or_an_unknown_token_is_401_and_writes_nothing(
    client: TestClient, database_url: str
) -> None:
    assert client.post("/v1/needs", json=f.volunteer_need()).status_code == 401
    r = client.post(
        "/v1/needs", json=f.volunteer_need(), headers={"Authorization": "Bearer cx_forged"}
    )
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert postings_count(database_url) == 0


def test_tokens_are_stored_hashed(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    token = community["Authorization"].split()[1]

    async def stored() -> list[str]:
        conn = await asyncpg.connect(database_url)
        try:
            return [r[0] for r in await conn.fetch("SELECT token_hash FROM access_tokens")]
        finally:
            await conn.close()

    hashes = asyncio.run(stored())
    assert token not in hashes and all(len(h) == 64 for h in hashes)


def test_a_weekly_need_names_every_occurrence_and_its_poster_owns_each(
    client: TestClient, broker: EmbeddedBroker, database_url: str, community: dict[str, str]
) -> None:
    r = client.post("/v1/needs?repeat_weeks=3", json=f.volunteer_need(), headers=community)
    assert r.status_code == 202
    body = r.json()
    need_ids = body["need_ids"].split(",")
    assert len(need_ids) == 3 and need_ids[0] == body["need_id"]
    wait_until(lambda: all_published(database_url), 10, "the posting is published")
    [record] = list(read_all(broker.bootstrap, ["needs.postings"]))
    posting = decode(record.value)
    assert posting.payload.repeat.weeks == 3  # type: ignore[attr-defined]

    async def owners() -> set[str]:
        conn = await asyncpg.connect(database_url)
        try:
            rows = await conn.fetch(
                "SELECT resource_id::text AS id FROM ownership WHERE resource = 'need'"
            )
            return {r["id"] for r in rows}
        finally:
            await conn.close()

    assert asyncio.run(owners()) == set(need_ids)
    # the same key with another number of weeks is another request
    headers = community | {"Idempotency-Key": "weekly"}
    client.post("/v1/needs?repeat_weeks=3", json=f.volunteer_need(), headers=headers)
    again = client.post("/v1/needs?repeat_weeks=4", json=f.volunteer_need(), headers=headers)
    assert again.status_code == 409


def test_a_weekly_need_of_one_week_or_a_year_and_more_is_refused(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    for weeks in (1, 53):
        r = client.post(
            f"/v1/needs?repeat_weeks={weeks}", json=f.volunteer_need(), headers=community
        )
        assert r.status_code == 422
        assert "repeat_weeks" in r.text
    assert postings_count(database_url) == 0
