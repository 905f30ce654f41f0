"""`GET /v1/events` shows each caller what they may see, decided from the resources an event is
about, never from its actor: derived events copy their cause's actor, and the stream once sent
a volunteer who declined a shift the next volunteer's proposal (their id, the need, the shift).

Every event type of the catalogue is archived once (the ledger's own code, so the read models
the rules consult are the ledger's), then each principal's stream is read up to a marker only
they can see, and what arrived is compared with what they may see."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from schemas.codec import encode
from schemas.common import Role
from schemas.envelope import Actor, Envelope
from schemas.message import Message
from schemas.messages import (
    EVENTS,
    MatchDeclined,
    MatchProposed,
    OrganisationRegistered,
    OrgKind,
    SupplyKind,
    VolunteerRegistered,
)
from services.gateway.visibility import ORGANISATION_EVENTS
from services.identity import create_organisation, issue_token
from services.ledger.archive import archive_batch, prepare
from services.platform.db import connect
from services.platform.kafka import Record, headers_for
from tests import factories as f
from tests import samples as s

pytestmark = pytest.mark.integration

PRINCIPALS = ("auditor", "community", "foundation", "social_org", "other_org", "volunteer", "other")
"""The need's community, the fund's foundation, the organisation that registered the volunteer,
an organisation with no part in anything, the volunteer concerned, and another volunteer."""

NEED_SIDE = {"community"}
FUND_SIDE = {"foundation"}
VOLUNTEER_SIDE = {"social_org", "volunteer"}
MATCH_SIDE = NEED_SIDE | VOLUNTEER_SIDE  # the sample match is a shift: no fund in it

SEES: dict[str, set[str]] = {
    # the samples name the community (the operator's acts are shown to the organisation)
    **{t: {"community"} for t in ORGANISATION_EVENTS},
    "VolunteerRegistered": VOLUNTEER_SIDE,
    "NeedPosted": NEED_SIDE,
    "NeedAmended": NEED_SIDE,
    "NeedCancelled": NEED_SIDE,
    "NeedExpired": NEED_SIDE,
    "NeedFulfilled": NEED_SIDE,
    "FundOpened": FUND_SIDE,
    "FundReserveSet": FUND_SIDE,
    "DonationReceived": FUND_SIDE,
    "DonationRefunded": FUND_SIDE,
    "FundsReserved": FUND_SIDE | NEED_SIDE,
    "ReservationReleased": FUND_SIDE,
    "FundsDisbursed": FUND_SIDE | NEED_SIDE,
    "PledgeMade": VOLUNTEER_SIDE,
    "PledgeAmended": VOLUNTEER_SIDE,
    "PledgeWithdrawn": VOLUNTEER_SIDE,
    "MatchProposed": MATCH_SIDE,
    "MatchAccepted": MATCH_SIDE,
    "MatchDeclined": MATCH_SIDE,
    "MatchExpired": MATCH_SIDE,
    "MatchCompleted": MATCH_SIDE,
    "MatchWithdrawn": MATCH_SIDE,
    "NoShowRecorded": MATCH_SIDE,
    "PostingRefused": FUND_SIDE,  # the sample refuses the foundation's posting
    "EventCorrected": FUND_SIDE,  # it corrects the foundation's donation
    # the matcher's traffic, the clock, dead letters and checkpoints: auditors only
    "ClockTicked": set(),
    "KeyRotated": set(),
    "MessageDeadLettered": set(),
    "SupplyListed": set(),
    "SupplyRequested": set(),
    "SupplyGranted": set(),
    "SupplyRefused": set(),
    "SupplyReleased": set(),
    "SupplyRevoked": set(),
    "CheckpointRecorded": set(),
    # reference data is public, read through GET /v1/reference/…: the stream is auditors' only
    "ReferenceTermDefined": set(),
    "ReferenceTermRetired": set(),
}


@dataclass
class World:
    ids: dict[str, uuid.UUID]
    tokens: dict[str, str]


async def _world(dsn: str) -> World:
    conn = await connect(dsn)
    try:
        ids: dict[str, uuid.UUID] = {}
        tokens: dict[str, str] = {}
        for who, kind, name in [
            ("auditor", OrgKind.AUDITOR, "审计组"),
            ("community", OrgKind.COMMUNITY, "金陵名人居社区"),
            ("foundation", OrgKind.FOUNDATION, "江东街道慈善基金会"),
            ("social_org", OrgKind.SOCIAL_ORG, "江东街道社会工作服务中心"),
            ("other_org", OrgKind.COMMUNITY, "永盛社区"),
        ]:
            ids[who], tokens[who] = await create_organisation(conn, kind, name, "鼓楼区", None)
        ids["volunteer"], ids["other"] = s.VOL, uuid.uuid4()
        for who, registrar in (("volunteer", "social_org"), ("other", "other_org")):
            await conn.execute(
                "INSERT INTO volunteers (volunteer_id, registered_by) VALUES ($1, $2)",
                ids[who],
                ids[registrar],
            )
            tokens[who] = await issue_token(conn, "volunteer", ids[who])
        await conn.executemany(
            "INSERT INTO ownership (resource, resource_id, org_id) VALUES ($1, $2, $3)",
            [("need", s.NEED, ids["community"]), ("fund", s.FUND, ids["foundation"])],
        )
        await conn.execute(
            "INSERT INTO postings (posting_id, topic, kafka_key, value, event_type, org_id,"
            " request_hash, response) VALUES ($1, 'donations.postings', 'k', '{}',"
            " 'ReceiveDonation', $2, 'h', '{}')",
            s.DON,
            str(ids["foundation"]),
        )
        return World(ids, tokens)
    finally:
        await conn.close()


def _envelope(payload: Message, actor: uuid.UUID, event_id: uuid.UUID | None = None) -> Envelope:
    env = f.envelope(payload, event_id=event_id)
    return env.model_copy(update={"actor": Actor(org_id=str(actor), role=Role.VOLUNTEER)})


async def _archive(dsn: str, envelopes: list[Envelope]) -> None:
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


def _read(client: TestClient, token: str, until: str) -> list[tuple[str, str]]:
    """(event type, event id) of every event the stream sends `token`, up to the event with
    id `until` (a marker the caller may see, archived last)."""
    seen: list[tuple[str, str]] = []
    headers = {"Authorization": f"Bearer {token}"}
    with client.stream("GET", "/v1/events?after=0", headers=headers) as stream:
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                event_id = json.loads(line[6:])["event_id"]
                if event_id == until:
                    return seen
                seen.append((kind, event_id))
    raise AssertionError("the stream ended before the marker")


def _markers(w: World) -> dict[str, Envelope]:
    """One event per principal, visible to them: read up to it and every event before it has
    been judged."""
    out: dict[str, Envelope] = {}
    for who in PRINCIPALS:
        if who in ("volunteer", "other"):
            payload: Message = VolunteerRegistered(
                volunteer_id=w.ids[who], pseudonym="标记", home=s.home
            )
        else:
            payload = OrganisationRegistered(
                org_id=w.ids[who], kind=OrgKind.COMMUNITY, name="标记", district="鼓楼区"
            )
        out[who] = _envelope(payload, w.ids[who])
    return out


def test_every_event_type_reaches_exactly_those_who_may_see_it(
    client: TestClient, database_url: str
) -> None:
    w = asyncio.run(_world(database_url))
    current = [m for m in s.samples() if type(m) in EVENTS]
    assert {m.TYPE for m in current} == {e.TYPE for e in EVENTS} == set(SEES)
    events = []
    for i, payload in enumerate(current):
        if payload.TYPE in ORGANISATION_EVENTS:
            payload = payload.model_copy(update={"org_id": w.ids["community"]})
        # the actor is someone who may NOT see the event: actors are copied from causes
        actor = w.ids["other" if i % 2 else "other_org"]
        event_id = s.DON if payload.TYPE == "DonationReceived" else None
        events.append(_envelope(payload, actor, event_id))
    markers = _markers(w)
    asyncio.run(_archive(database_url, events + list(markers.values())))

    kinds = {str(e.event_id): e.event_type for e in events}
    for who in PRINCIPALS:
        seen = _read(client, w.tokens[who], until=str(markers[who].event_id))
        got = sorted(kinds[eid] for _, eid in seen if eid in kinds)
        wanted = sorted(t for t in kinds.values() if who == "auditor" or who in SEES[t])
        assert got == wanted, (who, set(got) ^ set(wanted))


def test_a_volunteer_who_declined_does_not_receive_the_next_volunteers_proposal(
    client: TestClient, database_url: str
) -> None:
    """The issue's story: the next proposal copies the decline's actor (the first volunteer)."""
    w = asyncio.run(_world(database_url))
    first, second = w.ids["volunteer"], w.ids["other"]
    next_match = uuid.uuid4()
    proposal = MatchProposed(
        match_id=s.MATCH,
        need_id=s.NEED,
        supply=SupplyKind.VOLUNTEER,
        volunteer_id=first,
        shift=s.shift,
        minutes=120,
        zone="鼓楼区",
        rule="skills fit",
    )
    story = [
        _envelope(proposal, first),
        _envelope(MatchDeclined(match_id=s.MATCH, need_id=s.NEED, reason="那天有事"), first),
        _envelope(
            proposal.model_copy(update={"match_id": next_match, "volunteer_id": second}), first
        ),
    ]
    markers = _markers(w)
    asyncio.run(_archive(database_url, story + list(markers.values())))

    def types(who: str) -> list[str]:
        return [t for t, _ in _read(client, w.tokens[who], until=str(markers[who].event_id))]

    assert types("volunteer") == ["MatchProposed", "MatchDeclined"]
    assert types("other") == ["MatchProposed"]
    assert types("community") == ["MatchProposed", "MatchDeclined", "MatchProposed"]
