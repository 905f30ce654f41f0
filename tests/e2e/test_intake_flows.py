"""The three intake flows through the real HTTP API, broker and PostgreSQL: a foundation, a
community and a volunteer do the whole round trip; every kind of refusal writes nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest

from tests import factories as f
from tests.e2e.harness import Exchange, wait_for

pytestmark = pytest.mark.e2e


@dataclass
class World:
    ex: Exchange
    http: httpx.Client
    foundation: str
    other_foundation: str
    community: str
    other_community: str
    social_org: str
    auditor: str

    def call(
        self, method: str, path: str, token: str | None, body: Any = None, **headers: str
    ) -> httpx.Response:
        h = dict(headers)
        if token:
            h["Authorization"] = f"Bearer {token}"
        return self.http.request(method, path, json=body, headers=h)

    def get(self, path: str, token: str) -> Any:
        """The resource; LookupError while it is not visible yet (wait_for keeps polling)."""
        r = self.call("GET", path, token)
        if r.status_code == 404:
            raise LookupError(r.text)
        assert r.status_code == 200, r.text
        return r.json()

    def find(self, path: str, token: str) -> Any:
        """The resource, or None while it is not visible yet (404)."""
        r = self.call("GET", path, token)
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return r.json()

    def decided(self, posting_id: str, token: str) -> dict[str, Any]:
        """Wait until the posting is decided or refused; return its status."""
        return wait_for(
            f"posting {posting_id} to be decided",
            lambda: (
                s
                if (s := self.get(f"/v1/postings/{posting_id}", token))["status"] != "pending"
                else None
            ),
            timeout=60,
        )

    def postings_count(self) -> int:
        async def q() -> int:
            conn = await asyncpg.connect(self.ex.state["database_url"])
            try:
                return int(await conn.fetchval("SELECT count(*) FROM postings"))
            finally:
                await conn.close()

        return asyncio.run(q())


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ex = Exchange(tmp_path_factory.mktemp("flows") / "var").start()
    try:
        ex.wait_healthy()
        tokens = ex.create_orgs(
            ("foundation", "江东街道慈善基金会", "鼓楼区", "江东街道"),
            ("foundation", "建邺区慈善会", "建邺区", None),
            ("community", "金陵名人居社区", "鼓楼区", "江东街道"),
            ("community", "永盛社区", "雨花台区", "西善桥街道"),
            ("social-org", "江东街道社会工作服务中心", "鼓楼区", None),
            ("auditor", "审计组", "鼓楼区", None),
        )
        with ex.http() as http:
            yield World(ex, http, *tokens)
    finally:
        ex.stop()


def test_foundation_community_and_volunteer_round_trip(world: World) -> None:
    w = world
    # a foundation opens an earmarked fund and receives a donation
    fund = w.call("POST", "/v1/funds", w.foundation, f.fund()).json()
    gift = w.call(
        "POST", f"/v1/funds/{fund['fund_id']}/donations", w.foundation, f.donation(100_000)
    ).json()
    assert w.decided(gift["posting_id"], w.foundation)["status"] == "decided"

    # a social organisation registers a volunteer, who pledges with their own token
    reg = w.call(
        "POST",
        "/v1/volunteers",
        w.social_org,
        {"pseudonym": "王师傅", "home": {"district": "鼓楼区", "street": "江东街道"}},
    )
    assert reg.status_code == 202
    volunteer, vtoken = reg.json()["volunteer_id"], reg.json()["volunteer_token"]
    pledge = w.call("PUT", f"/v1/volunteers/{volunteer}/pledge", vtoken, f.pledge())
    assert w.decided(pledge.json()["posting_id"], vtoken)["status"] == "decided"

    # the community posts a shift and a money need; both are matched
    shift_need = w.call(
        "POST", "/v1/needs", w.community, f.volunteer_need(volunteers_needed=1)
    ).json()
    money_need = w.call("POST", "/v1/needs", w.community, f.money_need(30_000)).json()
    matched = wait_for(
        "both needs matched",
        lambda: all(
            w.get(f"/v1/needs/{n['need_id']}", w.community)["status"] == "matched"
            for n in (shift_need, money_need)
        ),
    )
    assert matched
    [shift] = w.get(f"/v1/needs/{shift_need['need_id']}", w.community)["matches"]
    [money] = w.get(f"/v1/needs/{money_need['need_id']}", w.community)["matches"]
    assert shift["volunteer_id"] == volunteer and money["fund_id"] == fund["fund_id"]

    # the volunteer accepts; the community confirms the hours and the money
    accepted = w.call("POST", f"/v1/matches/{shift['match_id']}/accept", vtoken).json()
    assert w.decided(accepted["posting_id"], vtoken)["status"] == "decided"
    done = w.call(
        "POST", f"/v1/matches/{shift['match_id']}/confirm", w.community, {"minutes_served": 120}
    ).json()
    paid = w.call(
        "POST",
        f"/v1/matches/{money['match_id']}/confirm",
        w.community,
        {"amount_received": {"amount_minor": 30_000, "currency": "CNY"}},
    ).json()
    seq = w.decided(paid["posting_id"], w.community)["decided_seq"]
    w.decided(done["posting_id"], w.community)
    need = w.get(f"/v1/needs/{shift_need['need_id']}?min_seq={seq}", w.community)
    assert need["status"] == "fulfilled" and need["matches"][0]["status"] == "completed"
    balance = w.get(f"/v1/funds/{fund['fund_id']}?min_seq={seq}", w.community)["balance"]
    assert balance == {
        "donated_minor": 100_000,
        "available_minor": 70_000,
        "reserved_minor": 0,
        "disbursed_minor": 30_000,
        "held_for_urgent_minor": 0,  # nothing held back unless the foundation sets a share
    }

    # the foundation refunds part of the donation; its history shows every movement
    refund = w.call(
        "POST",
        f"/v1/funds/{fund['fund_id']}/donations/{gift['donation_id']}/refunds",
        w.foundation,
        {"amount": {"amount_minor": 20_000, "currency": "CNY"}, "reason": "捐赠人要求退回部分"},
    ).json()
    seq = w.decided(refund["posting_id"], w.foundation)["decided_seq"]
    fund_now = w.get(f"/v1/funds/{fund['fund_id']}?min_seq={seq}", w.foundation)
    assert fund_now["balance"]["available_minor"] == 50_000
    history = w.get(f"/v1/funds/{fund['fund_id']}/history", w.foundation)["items"]
    assert [h["event_type"] for h in history] == [
        "DonationReceived",
        "DonationReceived",
        "MatchProposed",
        "MatchProposed",
        "MatchCompleted",
        "MatchCompleted",
        "DonationRefunded",
        "DonationRefunded",
    ]


def test_a_decline_moves_to_the_next_volunteer_and_a_cancel_releases_money(world: World) -> None:
    w = world
    vols = []
    for name in ("李阿姨", "小陈"):
        reg = w.call(
            "POST",
            "/v1/volunteers",
            w.community,
            {"pseudonym": name, "home": {"district": "鼓楼区"}},
        ).json()
        w.call(
            "PUT",
            f"/v1/volunteers/{reg['volunteer_id']}/pledge",
            reg["volunteer_token"],
            f.pledge(pseudonym=name, weekly_hour_limit=20),
        )
        vols.append(reg)
    need = w.call(
        "POST",
        "/v1/needs",
        w.community,
        f.volunteer_need(
            title="周日助餐",
            volunteers_needed=1,
            shift={
                "start": f.iso(f.T0 + f.timedelta(hours=2, minutes=30)),
                "end": f.iso(f.T0 + f.timedelta(hours=3, minutes=30)),
            },
        ),
    ).json()
    first = wait_for(
        "a proposal",
        lambda: (w.find(f"/v1/needs/{need['need_id']}", w.community) or {}).get("matches"),
    )[0]
    token = next(v["volunteer_token"] for v in vols if v["volunteer_id"] == first["volunteer_id"])
    w.call("POST", f"/v1/matches/{first['match_id']}/decline", token)
    matches = wait_for(
        "the next candidate",
        lambda: (
            m
            if len(m := w.get(f"/v1/needs/{need['need_id']}", w.community)["matches"]) == 2
            else None
        ),
    )
    assert matches[0]["status"] == "declined"
    assert matches[1]["volunteer_id"] != first["volunteer_id"]

    # a cancelled money need gives its reservation back to the fund
    fund = w.call("POST", "/v1/funds", w.foundation, f.fund(name="第二基金")).json()
    w.call("POST", f"/v1/funds/{fund['fund_id']}/donations", w.foundation, f.donation(40_000))
    money = w.call("POST", "/v1/needs", w.community, f.money_need(400_000, title="大额补贴")).json()
    wait_for(
        "money reserved",
        lambda: (w.find(f"/v1/funds/{fund['fund_id']}", w.foundation) or {"balance": {}})[
            "balance"
        ].get("reserved_minor"),
    )
    cancel = w.call(
        "POST", f"/v1/needs/{money['need_id']}/cancel", w.community, {"reason": "已由其他渠道解决"}
    ).json()
    seq = w.decided(cancel["posting_id"], w.community)["decided_seq"]
    # the withdrawal follows the cancellation through the matcher
    balance = wait_for(
        "the reservation released",
        lambda: (
            b
            if (b := w.get(f"/v1/funds/{fund['fund_id']}?min_seq={seq}", w.foundation)["balance"])[
                "reserved_minor"
            ]
            == 0
            else None
        ),
    )
    assert balance["available_minor"] > 0
    assert w.get(f"/v1/needs/{money['need_id']}", w.community)["status"] == "cancelled"


def test_every_refusal_is_401_or_403_with_a_reason_and_writes_nothing(world: World) -> None:
    w = world
    fund = w.call("POST", "/v1/funds", w.foundation, f.fund(name="第三基金")).json()
    need = w.call("POST", "/v1/needs", w.community, f.money_need(title="拒绝测试")).json()
    before = w.postings_count()
    cases = [
        ("POST", "/v1/needs", None, f.money_need(), 401),
        ("POST", "/v1/needs", "cx_not-a-token", f.money_need(), 401),
        ("POST", "/v1/funds", w.community, f.fund(), 403),
        ("POST", "/v1/needs", w.foundation, f.money_need(), 403),
        ("POST", "/v1/needs", w.auditor, f.money_need(), 403),
        ("POST", f"/v1/funds/{fund['fund_id']}/donations", w.other_foundation, f.donation(), 403),
        ("POST", f"/v1/needs/{need['need_id']}/cancel", w.other_community, {"reason": "x"}, 403),
        ("PATCH", f"/v1/needs/{need['need_id']}", w.other_community, {"urgency": "high"}, 403),
        (
            "POST",
            "/v1/volunteers",
            w.foundation,
            {"pseudonym": "x", "home": {"district": "鼓楼区"}},
            403,
        ),
        ("POST", "/v1/needs", w.community, f.money_need(amount=0), 422),
        ("GET", f"/v1/funds/{fund['fund_id']}/history", w.other_foundation, None, 403),
    ]
    for method, path, token, body, status in cases:
        r = w.call(method, path, token, body)
        assert r.status_code == status, (method, path, r.text)
        assert r.json()["detail"], "every refusal says why"
    assert w.postings_count() == before


def test_invalid_transitions_are_refused_by_the_owning_service_with_a_reason(world: World) -> None:
    w = world
    fund = w.call("POST", "/v1/funds", w.foundation, f.fund(name="第四基金")).json()
    gift = w.call(
        "POST", f"/v1/funds/{fund['fund_id']}/donations", w.foundation, f.donation(10_000)
    ).json()
    too_much = w.call(
        "POST",
        f"/v1/funds/{fund['fund_id']}/donations/{gift['donation_id']}/refunds",
        w.foundation,
        {"amount": {"amount_minor": 10_001, "currency": "CNY"}, "reason": "试试"},
    ).json()
    status = w.decided(too_much["posting_id"], w.foundation)
    assert status["status"] == "refused" and "exceeds" in status["reason"]

    need = w.call("POST", "/v1/needs", w.community, f.money_need(title="将被取消")).json()
    w.call("POST", f"/v1/needs/{need['need_id']}/cancel", w.community, {"reason": "不需要了"})
    amend = w.call("PATCH", f"/v1/needs/{need['need_id']}", w.community, {"urgency": "high"}).json()
    status = w.decided(amend["posting_id"], w.community)
    assert status["status"] == "refused" and "cancelled" in status["reason"]


def test_retries_with_an_idempotency_key_write_nothing_new(world: World) -> None:
    w = world
    body = f.money_need(title="幂等测试")
    first = w.call("POST", "/v1/needs", w.community, body, **{"Idempotency-Key": "k-1"})
    before = w.postings_count()
    again = w.call("POST", "/v1/needs", w.community, body, **{"Idempotency-Key": "k-1"})
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    other = w.call(
        "POST", "/v1/needs", w.community, f.money_need(title="别的"), **{"Idempotency-Key": "k-1"}
    )
    assert other.status_code == 409
    assert w.postings_count() == before
    # a volunteer's token is shown once: a retried registration does not reveal it again
    volunteer = {"pseudonym": "重试者", "home": {"district": "鼓楼区"}}
    reg = w.call("POST", "/v1/volunteers", w.community, volunteer, **{"Idempotency-Key": "v-1"})
    again = w.call("POST", "/v1/volunteers", w.community, volunteer, **{"Idempotency-Key": "v-1"})
    assert reg.json()["volunteer_token"].startswith("cx_")
    assert "volunteer_token" not in again.json()
    assert again.json()["volunteer_id"] == reg.json()["volunteer_id"]


def test_a_near_duplicate_need_is_flagged_not_merged(world: World) -> None:
    w = world
    body = f.volunteer_need(
        title="重复的需求", place={"district": "鼓楼区", "community": "重复测试"}
    )
    first = w.call("POST", "/v1/needs", w.community, body).json()
    second = w.call("POST", "/v1/needs", w.community, body | {"title": "重复的需求（再次）"}).json()
    assert "warnings" not in first
    [warning] = second["warnings"]
    assert warning["kind"] == "possible_duplicate" and first["need_id"] in warning["need_ids"]
    assert second["need_id"] != first["need_id"]


def test_lists_are_paginated_and_stamped_with_their_sequence(world: World) -> None:
    w = world
    for i in range(3):
        w.call("POST", "/v1/needs", w.community, f.money_need(title=f"分页{i}", category="culture"))
    wait_for(
        "three culture needs",
        lambda: len(w.get("/v1/needs?category=culture", w.community)["items"]) >= 3,
    )
    page1 = w.get("/v1/needs?category=culture&limit=2", w.community)
    page2 = w.get(f"/v1/needs?category=culture&limit=2&after={page1['next']}", w.community)
    items = page1["items"] + page2["items"]
    titles = [n["title"] for n in items]
    # each need once, newest archived first (postings on different partitions may be
    # archived in another order than they were posted)
    assert sorted(titles[:3]) == ["分页0", "分页1", "分页2"] and len(set(titles)) == len(titles)
    seqs = [n["seq"] for n in items]
    assert seqs == sorted(seqs, reverse=True) and len(page1["items"]) == 2
    assert page1["as_of_seq"] >= max(n["seq"] for n in page1["items"])


def test_server_sent_events_show_each_caller_only_what_they_may_see(world: World) -> None:
    w = world
    other = w.call(
        "POST",
        "/v1/needs",
        w.other_community,
        f.money_need(title="别人的需求", place={"district": "雨花台区"}),
    ).json()
    wait_for("the other need archived", lambda: w.get(f"/v1/needs/{other['need_id']}", w.auditor))
    fund = w.call("POST", "/v1/funds", w.foundation, f.fund(name="事件流基金")).json()

    def events_until(token: str, stop: Any, most: int = 2000) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        with w.http.stream(
            "GET", "/v1/events?after=0", timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    got.append(json.loads(line[6:]))
                    if stop(got[-1]) or len(got) >= most:
                        break
        return got

    def is_other_need(e: dict[str, Any]) -> bool:
        return bool(e["payload"].get("need_id") == other["need_id"])

    def is_my_fund(e: dict[str, Any]) -> bool:
        return bool(e["payload"].get("fund_id") == fund["fund_id"])

    audited = events_until(w.auditor, is_other_need)
    assert is_other_need(audited[-1]), "auditors see everything"
    mine = events_until(w.foundation, is_my_fund)
    assert is_my_fund(mine[-1])
    assert not any(is_other_need(e) for e in mine), "another community's need is not shown"
    assert all(e["event_type"] != "PostNeed" for e in mine), "postings are not streamed"


def test_every_outbox_row_is_archived_registrations_included(world: World) -> None:
    """Registered organisations travel through the outbox too; none is left unarchived (which
    /healthz would report as the archive falling behind)."""

    async def unarchived() -> int:
        conn = await asyncpg.connect(world.ex.state["database_url"])
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM postings WHERE archived_at IS NULL")
            )
        finally:
            await conn.close()

    wait_for("every outbox row archived", lambda: asyncio.run(unarchived()) == 0, timeout=60)
    assert world.http.get("/healthz").status_code == 200


def test_amend_and_withdraw_a_pledge_amend_a_need_and_record_a_no_show(world: World) -> None:
    w = world
    reg = w.call(
        "POST",
        "/v1/volunteers",
        w.community,
        {"pseudonym": "周师傅", "home": {"district": "鼓楼区"}},
    ).json()
    vid, vtoken = reg["volunteer_id"], reg["volunteer_token"]
    late = {
        "start": f.iso(f.T0 + f.timedelta(days=1)),
        "end": f.iso(f.T0 + f.timedelta(days=1, hours=4)),
    }
    first = w.call(
        "PUT",
        f"/v1/volunteers/{vid}/pledge",
        vtoken,
        f.pledge(pseudonym="周师傅", availability=[late]),
    )
    w.decided(first.json()["posting_id"], vtoken)
    # the organisation that registered the volunteer may amend the pledge for them
    amended = w.call(
        "PUT",
        f"/v1/volunteers/{vid}/pledge",
        w.community,
        f.pledge(
            pseudonym="周师傅",
            skills=["meal_delivery", "patrol"],
            availability=[late],
            weekly_hour_limit=10,
        ),
    ).json()
    assert w.decided(amended["posting_id"], w.community)["type"] == "AmendPledge"
    shift = {
        "start": f.iso(f.T0 + f.timedelta(days=1, hours=1)),
        "end": f.iso(f.T0 + f.timedelta(days=1, hours=2)),
    }
    need = w.call(
        "POST",
        "/v1/needs",
        w.community,
        f.volunteer_need(
            title="看家守院巡逻",
            category="home_watch",
            required_skills=["patrol"],
            shift=shift,
            volunteers_needed=1,
            deadline=f.iso(f.T0 + f.timedelta(days=2)),
            place={"district": "鼓楼区", "community": "巡逻测试"},
        ),
    ).json()
    [match] = wait_for(
        "the patrol matched", lambda: w.get(f"/v1/needs/{need['need_id']}", w.community)["matches"]
    )
    assert match["volunteer_id"] == vid

    # the community asks for two patrollers now: the need reopens for one more
    more = w.call(
        "PATCH",
        f"/v1/needs/{need['need_id']}",
        w.community,
        {"volunteers_needed": 2, "urgency": "high"},
    ).json()
    seq = w.decided(more["posting_id"], w.community)["decided_seq"]
    now = w.get(f"/v1/needs/{need['need_id']}?min_seq={seq}", w.community)
    assert (now["wanted"], now["urgency"], now["status"]) == (2, "high", "partially_matched")

    # the volunteer accepts, then does not come: a no-show, and the need wants two again
    w.decided(
        w.call("POST", f"/v1/matches/{match['match_id']}/accept", vtoken).json()["posting_id"],
        vtoken,
    )
    ns = w.call("POST", f"/v1/matches/{match['match_id']}/no-show", w.community).json()
    seq = w.decided(ns["posting_id"], w.community)["decided_seq"]
    after = w.get(f"/v1/needs/{need['need_id']}?min_seq={seq}", w.community)
    assert after["matches"][0]["status"] == "no_show" and after["filled"] == 0

    # withdrawing: the pledge is no longer offered
    gone = w.call(
        "POST", f"/v1/volunteers/{vid}/pledge/withdraw", vtoken, {"reason": "搬家了"}
    ).json()
    seq = w.decided(gone["posting_id"], vtoken)["decided_seq"]
    assert w.get(f"/v1/volunteers/{vid}?min_seq={seq}", vtoken)["status"] == "withdrawn"
    assert w.call("GET", f"/v1/volunteers/{vid}", w.other_community).status_code == 403
