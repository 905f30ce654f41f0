"""Input the API cannot serve is a 4xx that names the field and the reason, never a 500.

Each case here was once a 500 (found by schemathesis or by hand): a 500 also drops the client's
keep-alive connection, and says "the server is broken" where the client is at fault. Every
refusal must carry the API's 422 shape, `{"detail": [{"field", "reason", "value_type"}]}`,
and write nothing.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from tests import factories as f
from tests.integration.conftest import org_token, query

pytestmark = pytest.mark.integration

INT64_PAST_MAX = 2**63  # one past PostgreSQL's bigint


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(r: Any, field: str, status: int = 422) -> dict[str, Any]:
    """The refusal's entry for `field` (asserting the status and the API's 422 shape)."""
    assert r.status_code == status, (r.status_code, r.text)
    detail = r.json()["detail"]
    assert isinstance(detail, list), detail
    for entry in detail:
        assert set(entry) == {"field", "reason", "value_type"}, entry
        assert entry["reason"]
    by_field = {e["field"]: e for e in detail}
    assert field in by_field, detail
    return by_field[field]


def client_postings(dsn: str) -> int:
    return int(query(dsn, "SELECT count(*) FROM postings WHERE org_id <> 'operator'"))


@pytest.fixture
def community(database_url: str) -> dict[str, str]:
    return bearer(org_token(database_url, OrgKind.COMMUNITY, "江东社区"))


@pytest.fixture
def auditor(database_url: str) -> dict[str, str]:
    return bearer(org_token(database_url, OrgKind.AUDITOR, "南京市民政局审计"))


def a_match_on_a_need_of(dsn: str, org_name: str) -> uuid.UUID:
    """A proposed match on a need the organisation owns, as the ledger would have recorded it."""
    match_id, need_id = uuid.uuid4(), uuid.uuid4()

    async def write() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            org = await conn.fetchval("SELECT org_id FROM organisations WHERE name = $1", org_name)
            await conn.execute(
                "INSERT INTO ownership (resource, resource_id, org_id) VALUES ('need', $1, $2)",
                need_id,
                org,
            )
            await conn.execute(
                "INSERT INTO rm_matches (match_id, need_id, supply, status, spec, proposed_event)"
                " VALUES ($1, $2, 'volunteer', 'accepted', '{}'::jsonb, $3)",
                match_id,
                need_id,
                uuid.uuid4(),
            )
        finally:
            await conn.close()

    asyncio.run(write())
    return match_id


def test_a_confirmation_gives_exactly_one_measure(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    match_id = a_match_on_a_need_of(database_url, "江东社区")
    url = f"/v1/matches/{match_id}/confirm"
    for body in (
        {},
        {"minutes_served": 120, "amount_received": {"amount_minor": 100, "currency": "CNY"}},
    ):
        entry = refused(client.post(url, json=body, headers=community), "(body)")
        assert "minutes_served" in entry["reason"] and "amount_received" in entry["reason"]
    assert client_postings(database_url) == 0
    assert client.post(url, json={"minutes_served": 120}, headers=community).status_code == 202


SURROGATES: list[tuple[str, dict[str, Any], str]] = [
    ("/v1/needs", f.volunteer_need(title="银发\ud800助餐"), "title"),
    ("/v1/needs", f.volunteer_need(description="送餐\udfff"), "description"),
    ("/v1/needs", f.volunteer_need(place={"district": "鼓楼\ud800"}), "place.district"),
    ("/v1/needs", f.volunteer_need(category="elderly\ud800"), "category"),
    # a key cannot be named when it is not text: the body as a whole is refused
    ("/v1/needs", f.volunteer_need(**{"\ud800": 1}), "(body)"),
    ("/v1/funds", f.fund(currency="C\ud800Y"), "currency"),
    ("/v1/volunteers", {"pseudonym": "王\ud800", "home": {"district": "鼓楼区"}}, "pseudonym"),
]


def test_a_lone_surrogate_in_any_text_is_refused_by_field(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    foundation = bearer(org_token(database_url, OrgKind.FOUNDATION, "江东街道慈善基金会"))
    for path, body, field in SURROGATES:
        who = foundation if path == "/v1/funds" else community
        # json.dumps escapes it (\ud800), as a client in any language can send it
        r = client.post(
            path, content=json.dumps(body), headers=who | {"Content-Type": "application/json"}
        )
        assert refused(r, field)["value_type"] in ("string", "integer")
    assert client_postings(database_url) == 0


def test_cursors_beyond_int64_are_refused(client: TestClient, auditor: dict[str, str]) -> None:
    for path in ("/v1/needs", "/v1/funds", "/v1/matches", "/v1/events"):
        r = client.get(path, params={"after": INT64_PAST_MAX}, headers=auditor)
        assert "less than or equal to 9223372036854775807" in refused(r, "query.after")["reason"]
    for path in ("/v1/needs", f"/v1/funds/{uuid.uuid4()}"):
        r = client.get(path, params={"min_seq": INT64_PAST_MAX}, headers=auditor)
        refused(r, "query.min_seq")


NEED_FILTERS = [
    ("district", "\x00"),
    ("district", "鼓楼\x00区"),
    ("district", ""),
    ("category", "\x00"),
    ("category", "Elderly"),  # not a code (a well-formed one filters, finding none)
    ("status", "\x00"),
    ("status", "pending"),
    ("urgency", "\x00"),
    ("urgency", "whenever"),
]


def test_need_filters_are_checked_like_the_values_they_filter(
    client: TestClient, auditor: dict[str, str]
) -> None:
    for name, value in NEED_FILTERS:
        r = client.get("/v1/needs", params={name: value}, headers=auditor)
        assert refused(r, f"query.{name}")["value_type"] == "string"
    params = {
        "district": "鼓楼区",
        "category": "elderly_meals",
        "status": "partially_matched",
        "urgency": "high",
    }
    r = client.get("/v1/needs", params=params, headers=auditor)
    assert r.status_code == 200 and r.json()["items"] == []


def test_a_last_event_id_that_is_no_sequence_is_refused(
    client: TestClient, auditor: dict[str, str]
) -> None:
    # refused before the stream starts: the answer is the 422, not a stream
    for value in ("abc", "-1", "9223372036854775808", "1.5"):
        r = client.get("/v1/events", headers=auditor | {"Last-Event-ID": value})
        refused(r, "header.Last-Event-ID")


def test_a_weekly_need_must_end_before_2100(
    client: TestClient, database_url: str, community: dict[str, str]
) -> None:
    deadline = datetime(2099, 6, 1, tzinfo=UTC)
    shift = {"start": f.iso(deadline - timedelta(hours=3)), "end": f.iso(deadline)}
    body = f.volunteer_need(deadline=f.iso(deadline), shift=shift)
    r = client.post("/v1/needs?repeat_weeks=52", json=body, headers=community)
    assert "2100" in refused(r, "query.repeat_weeks")["reason"]
    assert client_postings(database_url) == 0
    # as many weeks as fit are fine
    assert client.post("/v1/needs?repeat_weeks=20", json=body, headers=community).status_code == 202


def test_as_of_takes_a_moment_the_exchange_can_hold(
    client: TestClient, auditor: dict[str, str]
) -> None:
    for at in (
        "0001-01-01T00:00:00+08:00",
        "9999-12-31T23:00:00-08:00",
        "2026-01-01T00:00:00",  # no offset
        "yesterday",
    ):
        refused(client.get("/v1/audit/as-of", params={"at": at}, headers=auditor), "query.at")
    r = client.get("/v1/audit/as-of", params={"at": "2026-01-01T00:00:00+08:00"}, headers=auditor)
    assert r.status_code == 200


def test_disclosure_takes_a_quarter_the_exchange_can_hold(
    client: TestClient, auditor: dict[str, str]
) -> None:
    for quarter in ("0000Q1", "9999Q4", "1999Q4", "2100Q1", "2026Q5"):
        params = {"fund": str(uuid.uuid4()), "quarter": quarter}
        r = client.get("/v1/audit/disclosure", params=params, headers=auditor)
        refused(r, "query.quarter")
    r = client.get(
        "/v1/audit/disclosure",
        params={"fund": str(uuid.uuid4()), "quarter": "2099Q4"},
        headers=auditor,
    )
    assert r.status_code == 404


def test_a_trail_of_nothing_or_of_two_names_the_fields(
    client: TestClient, auditor: dict[str, str]
) -> None:
    for params in ({}, {"fund": str(uuid.uuid4()), "need": str(uuid.uuid4())}):
        r = client.get("/v1/audit/trail", params=params, headers=auditor)
        assert "exactly one" in refused(r, "query.fund")["reason"]
