"""Skills and need categories are reference data on the log (issue #16): a skill the operator
adds at run time is matched by a need and a pledge posted after it, a street office adds a
category for its own district only, unknown codes are refused at the door naming the field,
and the auditor's replay from the log equals live (read models, matcher decisions, and the
lists themselves).

The gateway runs in-process on a real broker and PostgreSQL; the postings it wrote are decided
by the intake processors' own code and matched by the router and matcher partitions
(`simulate`), then archived by the ledger's write path, as in test_audit_replay.py."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from fastapi.testclient import TestClient

from schemas.codec import decode
from schemas.messages import MatchProposed, OrgKind
from services.audit.replay.rebuild import archived_matcher_log, replay_matcher, replay_projections
from services.audit.replay.reference import replay_reference
from services.audit.replay.simulate import simulate
from services.identity import create_operator
from services.intake.processor import KINDS, IntakeProcessor
from services.ledger.archive import archive_batch, prepare
from services.platform.kafka import Record, headers_for
from services.reference import seed
from tests import factories as f
from tests.integration.conftest import org_token

pytestmark = pytest.mark.integration

IT_SUPPORT = {"code": "it_support", "label_zh": "电脑手机帮忙", "label_en": "IT support"}


def _operator_token(dsn: str) -> str:
    async def make() -> str:
        conn = await asyncpg.connect(dsn)
        try:
            return (await create_operator(conn, "市民政局运维"))[1]
        finally:
            await conn.close()

    return asyncio.run(make())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _decide_match_and_archive(dsn: str) -> list[Record]:
    """Every posting the gateway wrote, decided by intake, matched and archived in order;
    the gateway's own events (organisations, reference data) archived as they are."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT topic, kafka_key, value, event_type, posting_id FROM postings ORDER BY seq"
        )
        intake = {k.postings.name: IntakeProcessor(k) for k in KINDS.values()}
        decided, facts = [], []
        for i, r in enumerate(rows):
            rec = Record(
                r["topic"],
                0,
                i,
                bytes(r["kafka_key"]),
                bytes(r["value"]),
                tuple(headers_for(r["posting_id"], r["event_type"])),
                i,
            )
            if r["topic"] in intake:
                decided += [decode(o.value) for o in intake[r["topic"]].handle(rec)]
            else:
                facts.append(rec)
        records = facts + simulate(decided)
        await prepare(conn)
        await archive_batch(conn, records)
        return records
    finally:
        await conn.close()


def test_a_skill_added_at_run_time_is_matched_and_replay_equals_live(
    client: TestClient, database_url: str
) -> None:
    operator = _bearer(_operator_token(database_url))
    community = _bearer(org_token(database_url, OrgKind.COMMUNITY, "金陵名人居社区"))
    social = _bearer(org_token(database_url, OrgKind.SOCIAL_ORG, "江东街道社工服务中心"))
    street = _bearer(org_token(database_url, OrgKind.STREET_OFFICE, "江东街道办事处"))
    need = f.volunteer_need(required_skills=["it_support"], category="digital_elderly")

    # Given the built-in lists, seeded on the log at the gateway's start
    skills = client.get("/v1/reference/skills", headers=community).json()
    assert {"driving", "digital_help"} <= {s["code"] for s in skills}
    assert "it_support" not in {s["code"] for s in skills}
    # an unknown code is refused at the door, naming the field; nothing is written
    before = client.get("/v1/reference/categories", headers=community).json()
    r = client.post("/v1/needs", json=need, headers=community)
    assert r.status_code == 422, r.text
    assert [p["field"] for p in r.json()["detail"]] == ["required_skills.0"]

    # When the operator adds the skill over HTTP (a community may not; the code once only)
    assert (
        client.post("/v1/reference/skills", json=IT_SUPPORT, headers=community).status_code == 403
    )
    r = client.post("/v1/reference/skills", json=IT_SUPPORT, headers=operator)
    assert r.status_code == 201, r.text
    assert r.json()["district"] is None
    again = client.post("/v1/reference/skills", json=IT_SUPPORT, headers=operator)
    assert again.status_code == 409 and again.json()["field"] == "code"
    listed = {s["code"]: s for s in client.get("/v1/reference/skills", headers=community).json()}
    assert listed["it_support"]["label_zh"] == "电脑手机帮忙"
    schema = client.get("/v1/schemas/PostNeed", headers=community).json()
    skill_codes = schema["$defs"]["NeedSpec"]["properties"]["required_skills"]["items"]["enum"]
    assert "it_support" in skill_codes

    # and a registrar's file may name it as people read it (a dry run: nothing written)
    sheet = (
        "编号,称呼,区,技能,可服务时间\nIT-1,小周,鼓楼区,电脑手机帮忙、IT support,每天 09:00-12:00\n"
    )
    r = client.post(
        "/v1/imports/volunteers?dry_run=true",
        content=sheet.encode(),
        headers={**social, "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["would_create"], r.json()["problems"]) == (1, []), r.json()["problems"]

    # Then a need requiring it and a pledge offering it, posted after, are accepted
    assert client.post("/v1/needs", json=need, headers=community).status_code == 202
    volunteer = client.post(
        "/v1/volunteers", json={"pseudonym": "小林", "home": {"district": "鼓楼区"}}, headers=social
    ).json()
    pledge = f.pledge(skills=["it_support", "no_such_skill"])
    r = client.put(
        f"/v1/volunteers/{volunteer['volunteer_id']}/pledge",
        json=pledge,
        headers=_bearer(volunteer["volunteer_token"]),
    )
    assert r.status_code == 422 and [p["field"] for p in r.json()["detail"]] == ["skills.1"]
    pledge["skills"] = ["it_support"]
    r = client.put(
        f"/v1/volunteers/{volunteer['volunteer_id']}/pledge",
        json=pledge,
        headers=_bearer(volunteer["volunteer_token"]),
    )
    assert r.status_code == 202, r.text

    # A street office adds a category for its own district, and for no other
    mine: dict[str, Any] = {
        "code": "lane_garden",
        "label_zh": "楼道微花园",
        "label_en": "Lane gardens",
    }
    elsewhere = {**mine, "code": "other_garden", "district": "玄武区"}
    assert (
        client.post("/v1/reference/categories", json=elsewhere, headers=street).status_code == 403
    )
    r = client.post("/v1/reference/categories", json=mine, headers=street)
    assert r.status_code == 201 and r.json()["district"] == "鼓楼区"
    away = f.money_need(category="lane_garden", place={"district": "玄武区"})
    r = client.post("/v1/needs", json=away, headers=community)
    assert r.status_code == 422 and [p["field"] for p in r.json()["detail"]] == ["category"]
    after = client.get("/v1/reference/categories", headers=community).json()
    assert len(after) == len(before) + 1

    # Retired: new postings refused, what was accepted keeps working
    retire = client.post("/v1/reference/categories/lane_garden/retire", headers=community)
    assert retire.status_code == 403
    assert client.post("/v1/reference/categories/lane_garden/retire", headers=street).json()[
        "changed"
    ]
    here = f.money_need(category="lane_garden")
    assert client.post("/v1/needs", json=here, headers=community).status_code == 422

    # And the log, decided and archived, proposes the match and replays to the same state
    records = asyncio.run(_decide_match_and_archive(database_url))
    proposals = [decode(r.value).payload for r in records if r.event_type == "MatchProposed"]
    assert any(
        isinstance(p, MatchProposed) and p.volunteer_id == uuid.UUID(volunteer["volunteer_id"])
        for p in proposals
    ), "the new skill was matched"

    async def replay() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            proj = await replay_projections(conn)
            assert proj.equal, [str(d) for d in proj.shown]
            inputs, logged = await archived_matcher_log(conn)
            matcher = replay_matcher(inputs, logged)
            assert matcher.equal, [str(d) for d in matcher.differences]
            refdata = await replay_reference(conn)
            assert refdata.equal, refdata.differences
            assert refdata.terms == len(after) + len(skills) + 1  # and it_support
            assert await seed(conn) == 0, "a seed already on the log is not written again"
        finally:
            await conn.close()

    asyncio.run(replay())
