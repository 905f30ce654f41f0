"""A foundation sets what its fund holds back for urgent needs, over HTTP, and reads it back
(issue 17): `PUT /v1/funds/{id}/reserve`, decided by the donations intake, projected by the
ledger's own code, shown on `GET /v1/funds/{id}` with the amount held back now.

The gateway commits each posting; the test decides it with the intake's pure `decide` and
archives the decisions with the ledger's `archive_batch`, so no stream service need start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from fastapi.testclient import TestClient

from schemas.codec import decode, encode
from schemas.messages import OrgKind
from services.domain.intake import IntakeState, decide
from services.ledger.archive import archive_batch, prepare
from services.platform.db import connect
from services.platform.kafka import Record, headers_for
from tests import factories as f
from tests.integration.conftest import org_token

pytestmark = pytest.mark.integration


async def _decide_and_archive(dsn: str) -> None:
    """What intake-donations and the ledger do with every committed posting, in order."""
    conn = await connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT value FROM postings WHERE topic = 'donations.postings' ORDER BY seq"
        )
        state, decided = IntakeState(), []
        for row in rows:
            decided += decide(state, decode(bytes(row["value"])))
        await prepare(conn)
        await archive_batch(
            conn,
            [
                Record(
                    "funds.events",
                    0,
                    i,
                    b"k",
                    encode(e),
                    tuple(headers_for(e.event_id, e.event_type)),
                )
                for i, e in enumerate(decided)
            ],
        )
    finally:
        await conn.close()


def _bearer(dsn: str, kind: OrgKind, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {org_token(dsn, kind, name)}"}


def test_the_foundation_sets_its_funds_reserve_and_reads_it_back(
    client: TestClient, database_url: str
) -> None:
    foundation = _bearer(database_url, OrgKind.FOUNDATION, "江东街道慈善基金会")
    community = _bearer(database_url, OrgKind.COMMUNITY, "金陵名人居社区")
    # Given a fund opened with a 75 % reserve and 2,000 yuan donated
    body: dict[str, Any] = f.fund() | {"urgent_reserve_percent": 75}
    opened = client.post("/v1/funds", json=body, headers=foundation)
    assert opened.status_code == 202, opened.text
    fund_id = opened.json()["fund_id"]
    gift = client.post(
        f"/v1/funds/{fund_id}/donations", json=f.donation(200_000), headers=foundation
    )
    assert gift.status_code == 202, gift.text
    # When the foundation lowers it to 40 %
    changed = client.put(
        f"/v1/funds/{fund_id}/reserve", json={"urgent_reserve_percent": 40}, headers=foundation
    )
    assert changed.status_code == 202, changed.text
    # and a community tries to change it, or the foundation asks for 101 %
    refused = client.put(
        f"/v1/funds/{fund_id}/reserve", json={"urgent_reserve_percent": 0}, headers=community
    )
    too_much = client.put(
        f"/v1/funds/{fund_id}/reserve", json={"urgent_reserve_percent": 101}, headers=foundation
    )
    # Then the community is refused, and 101 is a 422 naming the field, with nothing written
    assert refused.status_code == 403, refused.text
    assert too_much.status_code == 422
    assert [p["field"] for p in too_much.json()["detail"]] == ["urgent_reserve_percent"]
    asyncio.run(_decide_and_archive(database_url))
    # and the fund shows 40 % and the 800 yuan held back now
    fund = client.get(f"/v1/funds/{fund_id}", headers=foundation).json()
    assert fund["urgent_reserve_percent"] == 40
    assert fund["balance"]["available_minor"] == 200_000
    assert fund["balance"]["held_for_urgent_minor"] == 80_000
