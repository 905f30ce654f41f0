"""The reads the web app's pages stand on (#14): a community's own needs (`?org_id=`), a
registrar's volunteers (`GET /v1/volunteers`), a gift's donor in the fund's history (an
organisation's name, never anyone else's label) and when a volunteer's shifts were confirmed.

The events are archived with the ledger's own code (so the read models are the ledger's), then
read over HTTP as each party; refusals (wrong role, another organisation, bad input) included.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from schemas.codec import encode
from schemas.common import Role
from schemas.envelope import Actor, Envelope
from schemas.message import Message
from schemas.messages import (
    DonationReceived,
    FundOpened,
    MatchCompleted,
    MatchProposed,
    NeedPosted,
    OrgKind,
    SupplyKind,
    VolunteerRegistered,
)
from services.identity import create_organisation, issue_token
from services.ledger.archive import archive_batch, prepare
from services.platform.db import connect
from services.platform.kafka import Record, headers_for
from tests import factories as f
from tests import samples as s

pytestmark = pytest.mark.integration

FOUNDATION_NAME = "江东街道慈善基金会"
CONFIRMED = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)  # 00:30 on 1 January in Nanjing


@dataclass
class World:
    ids: dict[str, uuid.UUID]
    tokens: dict[str, str]
    needs: dict[str, uuid.UUID]


async def _world(dsn: str) -> World:
    conn = await connect(dsn)
    try:
        ids: dict[str, uuid.UUID] = {}
        tokens: dict[str, str] = {}
        for who, kind, name in [
            ("auditor", OrgKind.AUDITOR, "审计组"),
            ("community", OrgKind.COMMUNITY, "金陵名人居社区"),
            ("other", OrgKind.COMMUNITY, "永盛社区"),
            ("foundation", OrgKind.FOUNDATION, FOUNDATION_NAME),
            ("social_org", OrgKind.SOCIAL_ORG, "江东街道社会工作服务中心"),
        ]:
            ids[who], tokens[who] = await create_organisation(conn, kind, name, "鼓楼区", None)
        for who, registrar in (("volunteer", "social_org"), ("neighbour", "other")):
            ids[who] = uuid.uuid4()
            await conn.execute(
                "INSERT INTO volunteers (volunteer_id, registered_by) VALUES ($1, $2)",
                ids[who],
                ids[registrar],
            )
            tokens[who] = await issue_token(conn, "volunteer", ids[who])
        needs = {"mine": uuid.uuid4(), "theirs": uuid.uuid4()}
        await conn.executemany(
            "INSERT INTO ownership (resource, resource_id, org_id) VALUES ($1, $2, $3)",
            [
                ("need", needs["mine"], ids["community"]),
                ("need", needs["theirs"], ids["other"]),
                ("fund", s.FUND, ids["foundation"]),
            ],
        )
        return World(ids, tokens, needs)
    finally:
        await conn.close()


def _by(payload: Message, actor: uuid.UUID, at: datetime = f.T0) -> Envelope[Message]:
    env = f.envelope(payload, at=at)
    return env.model_copy(update={"actor": Actor(org_id=str(actor), role=Role.COMMUNITY)})


async def _archive(dsn: str, envelopes: list[Envelope[Message]]) -> None:
    conn = await connect(dsn)
    try:
        await prepare(conn)
        await archive_batch(
            conn,
            [
                Record(
                    topic="exchange.events",
                    partition=0,
                    offset=i,
                    key=b"k",
                    value=encode(env),
                    headers=tuple(headers_for(env.event_id, env.event_type)),
                )
                for i, env in enumerate(envelopes)
            ],
        )
    finally:
        await conn.close()


def _story(w: World) -> list[Envelope[Message]]:
    ids = w.ids
    named_gift = s.plain_gift.model_copy(update={"donor": FOUNDATION_NAME, "note": ""})
    match = MatchProposed(
        match_id=s.MATCH,
        need_id=w.needs["mine"],
        supply=SupplyKind.VOLUNTEER,
        volunteer_id=ids["volunteer"],
        shift=s.shift,
        minutes=120,
        zone="鼓楼区",
        rule="skills fit",
    )
    return [
        _by(NeedPosted(need_id=w.needs["mine"], need=s.need), ids["community"]),
        _by(NeedPosted(need_id=w.needs["theirs"], need=s.need), ids["other"]),
        _by(
            VolunteerRegistered(volunteer_id=ids["volunteer"], pseudonym="王师傅", home=s.home),
            ids["social_org"],
        ),
        _by(
            VolunteerRegistered(volunteer_id=ids["neighbour"], pseudonym="李阿姨", home=s.home),
            ids["other"],
        ),
        _by(FundOpened(fund_id=s.FUND, fund=s.fund), ids["foundation"]),
        _by(
            DonationReceived(fund_id=s.FUND, donation_id=uuid.uuid4(), donation=named_gift),
            ids["foundation"],
        ),
        _by(
            DonationReceived(fund_id=s.FUND, donation_id=s.DON, donation=s.gift), ids["foundation"]
        ),
        _by(match, ids["volunteer"]),
        _by(
            MatchCompleted(match_id=s.MATCH, need_id=w.needs["mine"], minutes_served=90),
            ids["community"],
            at=CONFIRMED,
        ),
    ]


@pytest.fixture
def world(client: TestClient, database_url: str) -> World:
    w = asyncio.run(_world(database_url))
    asyncio.run(_archive(database_url, _story(w)))
    return w


def _get(client: TestClient, w: World, who: str, path: str) -> tuple[int, object]:
    r = client.get(path, headers={"Authorization": f"Bearer {w.tokens[who]}"})
    return r.status_code, r.json()


def test_a_communitys_own_needs_are_listed_by_org_id(client: TestClient, world: World) -> None:
    me = world.ids["community"]
    code, page = _get(client, world, "community", f"/v1/needs?org_id={me}")
    assert code == 200
    assert [n["need_id"] for n in page["items"]] == [str(world.needs["mine"])]  # type: ignore[index]
    # needs are public: another organisation reads the same list, no more
    code, page = _get(client, world, "other", f"/v1/needs?org_id={me}")
    assert [n["need_id"] for n in page["items"]] == [str(world.needs["mine"])]  # type: ignore[index]
    code, page = _get(client, world, "community", "/v1/needs?org_id=not-an-id")
    assert code == 422
    assert [p["field"] for p in page["detail"]] == ["query.org_id"]  # type: ignore[index]


def test_a_registrar_lists_the_volunteers_it_registered_and_no_one_else(
    client: TestClient, world: World
) -> None:
    def names(who: str) -> list[str]:
        code, page = _get(client, world, who, "/v1/volunteers")
        assert code == 200, page
        return sorted(v["pseudonym"] for v in page["items"])  # type: ignore[index]

    assert names("social_org") == ["王师傅"]
    assert names("other") == ["李阿姨"]
    assert names("community") == []
    assert names("auditor") == ["李阿姨", "王师傅"]
    for who in ("foundation", "volunteer"):
        code, page = _get(client, world, who, "/v1/volunteers")
        assert code == 403, (who, page)
    code, page = _get(client, world, "social_org", "/v1/volunteers?limit=0")
    assert code == 422
    assert [p["field"] for p in page["detail"]] == ["query.limit"]  # type: ignore[index]


def test_only_the_volunteer_or_their_registrar_may_change_or_withdraw_the_pledge(
    client: TestClient, world: World
) -> None:
    """The one rule (services/gateway/writes.py `_volunteer_or_registrar`), refused before
    anything is written."""
    vid = world.ids["volunteer"]
    for who in ("other", "foundation", "neighbour"):
        r = client.post(
            f"/v1/volunteers/{vid}/pledge/withdraw",
            json={"reason": "搬家"},
            headers={"Authorization": f"Bearer {world.tokens[who]}"},
        )
        assert r.status_code == 403, (who, r.text)
    r = client.post(
        f"/v1/volunteers/{vid}/pledge/withdraw",
        json={"reason": ""},
        headers={"Authorization": f"Bearer {world.tokens['social_org']}"},
    )
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "reason"
    r = client.patch(
        f"/v1/needs/{world.needs['mine']}",
        json={"urgency": "critical"},
        headers={"Authorization": f"Bearer {world.tokens['other']}"},
    )
    assert r.status_code == 403


def test_the_fund_history_names_organisation_donors_only(client: TestClient, world: World) -> None:
    code, page = _get(client, world, "foundation", f"/v1/funds/{s.FUND}/history")
    assert code == 200
    gifts = [
        h["donor"]
        for h in page["items"]  # type: ignore[index]
        if h["event_type"] == "DonationReceived" and h["account"].endswith(":available")
    ]
    assert sorted(gifts, key=str) == [None, FOUNDATION_NAME]  # the sealed label: never shown
    code, _ = _get(client, world, "community", f"/v1/funds/{s.FUND}/history")
    assert code == 403


def test_a_volunteers_shifts_say_the_minutes_confirmed_and_when(
    client: TestClient, world: World
) -> None:
    vid = world.ids["volunteer"]
    code, me = _get(client, world, "volunteer", f"/v1/volunteers/{vid}")
    assert code == 200
    (m,) = me["matches"]  # type: ignore[index]
    assert m["status"] == "completed" and m["minutes_served"] == 90 and m["minutes"] == 120
    assert datetime.fromisoformat(m["completed_at"]) == CONFIRMED
    code, _ = _get(client, world, "neighbour", f"/v1/volunteers/{vid}")
    assert code == 403
