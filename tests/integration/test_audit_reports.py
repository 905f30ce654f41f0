"""A small scenario whose answers were worked out by hand, archived through the real ledger
code (archive_batch) into PostgreSQL; the reports must give exactly those answers.

Given: a restricted fund 江东街道银发助餐专项基金 with two donations (800,000 fen from a
registered organisation, 200,000 fen from an individual), a money need in 鼓楼区 paid in full
(300,000) and one in 雨花台区 still reserved (500,000), a refund of 100,000 from the individual's
donation and a correction note about it; a volunteer 王师傅 pledging 300 minutes, declining
one 60-minute shift and serving 90 of 120 planned minutes on another.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from schemas.codec import encode
from schemas.common import Role
from schemas.envelope import Actor, Envelope, originate
from schemas.messages import (
    DonationReceived,
    DonationRefunded,
    EventCorrected,
    FundOpened,
    MatchCompleted,
    MatchDeclined,
    MatchProposed,
    Message,
    NeedPosted,
    OrganisationRegistered,
    PledgeMade,
    VolunteerRegistered,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from services.audit.reports import asof, disclosure, trail
from services.audit.reports.api_data import disclosure_report, sequence_report
from services.audit.reports.reading import load_books
from services.ledger.archive import archive_batch, prepare
from services.ledger.sequences import HOME
from services.platform.kafka import Record, headers_for
from tests import factories as f

pytestmark = pytest.mark.integration

FOUNDATION, COMMUNITY, DONOR_ORG = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
FUND, DON_A, DON_B = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
N1, N2, N3 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
M1, M2, M3, M4 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
VOL = uuid.uuid4()
T0 = f.T0


class Log:
    """Builds envelopes with stream numbers and archives them in order, one minute apart."""

    def __init__(self) -> None:
        self.envs: list[Envelope[Message]] = []
        self.seq: dict[str, int] = {}

    def add(
        self,
        payload: Message,
        stream: str,
        org: uuid.UUID | str,
        role: Role,
        seq: int | None = None,
    ) -> Envelope[Message]:
        n = seq if seq is not None else self.seq.get(stream, 0) + 1
        self.seq[stream] = max(n, self.seq.get(stream, 0))
        at = T0 + timedelta(minutes=len(self.envs))
        actor = Actor(org_id=str(org), role=role)
        env = originate(
            payload, event_id=uuid.uuid4(), at=at, actor=actor, stream_id=stream, stream_seq=n
        )
        self.envs.append(env)
        return env

    def records(self, start: int = 0) -> list[Record]:
        return [  # each stream on its home topic, where the ledger checks its numbers
            Record(
                HOME.get(e.stream_id.split(":", 1)[0], "test.events"),
                0,
                start + i,
                b"k",
                encode(e),
                headers_for(e.event_id, e.event_type),
            )
            for i, e in enumerate(self.envs[start:])
        ]


def money_need(amount: int, district: str, people: int) -> NeedSpec:
    return NeedSpec.model_validate(
        f.money_need(amount, place={"district": district}, people_served=people)
    )


def proposed(match: uuid.UUID, need: uuid.UUID, **kw: Any) -> MatchProposed:
    return MatchProposed(match_id=match, need_id=need, zone="z", rule="test", **kw)


def scenario() -> Log:
    log = Log()
    fo, co = Role.FOUNDATION, Role.COMMUNITY
    for org, kind, name in (
        (FOUNDATION, "foundation", "江东街道慈善基金会"),
        (COMMUNITY, "community", "金陵名人居社区"),
        (DONOR_ORG, "social_org", "金陵名人居业主委员会"),
    ):
        log.add(
            OrganisationRegistered(org_id=org, kind=kind, name=name, district="鼓楼区"),
            f"organisation:{org}",
            "operator",
            Role.SYSTEM,
        )
    fund = FundSpec.model_validate(f.fund(districts=["鼓楼区", "雨花台区"]))
    log.add(FundOpened(fund_id=FUND, fund=fund), f"fund:{FUND}", FOUNDATION, fo)
    for did, donor, amount in ((DON_A, "金陵名人居业主委员会", 800_000), (DON_B, "张三", 200_000)):
        spec = DonationSpec.model_validate(f.donation(amount, donor=donor))
        log.add(
            DonationReceived(fund_id=FUND, donation_id=did, donation=spec),
            f"fund:{FUND}",
            FOUNDATION,
            fo,
        )
    log.add(
        NeedPosted(need_id=N1, need=money_need(300_000, "鼓楼区", 40)), f"need:{N1}", COMMUNITY, co
    )
    log.add(
        NeedPosted(need_id=N2, need=money_need(500_000, "雨花台区", 25)),
        f"need:{N2}",
        COMMUNITY,
        co,
    )
    cny = {"amount_minor": 300_000, "currency": "CNY"}
    log.add(
        proposed(M1, N1, supply="fund", fund_id=FUND, amount=cny),
        f"match:{M1}",
        "exchange",
        Role.SYSTEM,
    )
    log.add(MatchCompleted(match_id=M1, need_id=N1, amount=cny), f"match:{M1}", COMMUNITY, co)
    log.add(
        proposed(
            M2, N2, supply="fund", fund_id=FUND, amount={"amount_minor": 500_000, "currency": "CNY"}
        ),
        f"match:{M2}",
        "exchange",
        Role.SYSTEM,
    )
    refund = DonationRefunded(
        fund_id=FUND,
        donation_id=DON_B,
        refund_id=uuid.uuid4(),
        amount={"amount_minor": 100_000, "currency": "CNY"},
        reason="捐赠人要求部分退回",
    )
    log.add(refund, f"fund:{FUND}", FOUNDATION, fo)
    donation_b = log.envs[5]
    log.add(
        EventCorrected(
            corrects_event_id=donation_b.event_id,
            corrects_event_type="DonationReceived",
            reason="捐赠金额录入错误 amount mistyped",
            replacement={
                "fund_id": str(FUND),
                "donation_id": str(DON_B),
                "donation": {
                    "donor": "张三",
                    "amount": {"amount_minor": 250_000, "currency": "CNY"},
                },
            },
        ),
        f"fund:{FUND}",
        FOUNDATION,
        fo,
    )
    log.add(
        VolunteerRegistered(volunteer_id=VOL, pseudonym="王师傅", home={"district": "鼓楼区"}),
        f"volunteer:{VOL}",
        COMMUNITY,
        co,
    )
    pledge = PledgeSpec.model_validate(f.pledge())  # one window of 5 hours: 300 minutes
    log.add(PledgeMade(volunteer_id=VOL, pledge=pledge), f"volunteer:{VOL}", VOL, Role.VOLUNTEER)
    need3 = NeedSpec.model_validate(f.volunteer_need())
    log.add(NeedPosted(need_id=N3, need=need3), f"need:{N3}", COMMUNITY, co)
    assert need3.shift is not None
    for m, minutes in ((M3, 120), (M4, 60)):
        log.add(
            proposed(
                m, N3, supply="volunteer", volunteer_id=VOL, shift=need3.shift, minutes=minutes
            ),
            f"match:{m}",
            "exchange",
            Role.SYSTEM,
        )
    log.add(MatchDeclined(match_id=M4, need_id=N3), f"match:{M4}", VOL, Role.VOLUNTEER)
    log.add(
        MatchCompleted(match_id=M3, need_id=N3, minutes_served=90), f"match:{M3}", COMMUNITY, co
    )
    return log


@pytest.fixture
async def archived(db: asyncpg.Connection) -> Log:
    await db.execute(
        "INSERT INTO organisations (org_id, kind, name, district) VALUES"
        " ($1, 'foundation', '江东街道慈善基金会', '鼓楼区'),"
        " ($2, 'community', '金陵名人居社区', '鼓楼区')",
        FOUNDATION,
        COMMUNITY,
    )
    await prepare(db)
    log = scenario()
    assert await archive_batch(db, log.records()) == len(log.envs)
    return log


async def test_every_entry_balances_and_the_books_match_the_ledger(
    db: asyncpg.Connection, archived: Log
) -> None:
    unbalanced = await db.fetch(
        "SELECT event_id, currency FROM journal_lines GROUP BY 1, 2 HAVING sum(amount_minor) <> 0"
    )
    assert unbalanced == []
    ledger = {
        (r["account"], r["currency"].strip()): r["total"]
        for r in await db.fetch(
            "SELECT account, currency, sum(amount_minor) AS total FROM journal_lines GROUP BY 1, 2"
        )
    }
    books, _ = await load_books(db)
    assert {k: v for k, v in books.accounts.items() if v} == {k: v for k, v in ledger.items() if v}
    assert books.volunteer_minutes(VOL) == {
        "offered": 210,
        "reserved": 0,
        "served": 90,
        "pledged": 300,
    }
    assert await sequence_report(db) == [] and await sequence_report(db, rescan=True) == []


async def test_as_of_now_and_before_the_refund(db: asyncpg.Connection, archived: Log) -> None:
    end = T0 + timedelta(hours=1)
    now = asof.as_of((await load_books(db, end))[0], end)
    (fund,) = now.funds
    assert (fund.available, fund.reserved, fund.disbursed) == (100_000, 500_000, 300_000)
    status = {n.need_id: (n.status, n.filled, n.completed) for n in now.needs}
    assert status == {
        N1: ("fulfilled", 300_000, 300_000),
        N2: ("matched", 500_000, 0),
        N3: ("partially_matched", 1, 1),
    }
    (vol,) = now.volunteers
    assert (vol.offered, vol.reserved, vol.served) == (210, 0, 90)
    before_refund = archived.envs[11].recorded_at - timedelta(seconds=1)
    then = asof.as_of((await load_books(db, before_refund))[0], before_refund)
    assert (then.funds[0].available, then.funds[0].reserved) == (200_000, 500_000)
    assert then.volunteers == []
    assert "江东街道银发助餐专项基金" in asof.render(now)


async def test_trail_allocates_each_fen_first_in_first_out(
    db: asyncpg.Connection, archived: Log
) -> None:
    books, events = await load_books(db)
    a = [s for s in trail.trail(books, events, donation=DON_A) if s.event_type.startswith("alloc")]
    assert [(s.event_type, s.what.split(" fen")[0]) for s in a] == [
        ("allocation:disbursed", "300000"),
        ("allocation:reserved", "500000"),
    ]
    assert a[0].by == "金陵名人居社区"  # who confirmed the disbursement
    b = [s.event_type for s in trail.trail(books, events, donation=DON_B)]
    assert b == ["DonationReceived", "allocation:refunded", "allocation:available"]
    hours = trail.render(trail.trail(books, events, volunteer=VOL))
    assert "王师傅 served 90 of 120 planned minutes" in hours and "金陵名人居社区" in hours
    assert str(VOL) not in hours


async def test_disclosure_figures_and_no_personal_data(
    db: asyncpg.Connection, archived: Log
) -> None:
    rep = await disclosure_report(db, FUND, "2026Q4")
    got = [
        (x.section, x.label, x.district, x.count, x.amount_minor, x.people_served)
        for x in rep.lines
        if x.section != "corrections"
    ]
    assert got == [
        ("opening", "available", "", 0, 0, 0),
        ("opening", "reserved", "", 0, 0, 0),
        ("opening", "disbursed", "", 0, 0, 0),
        ("income", "金陵名人居业主委员会", "", 1, 800_000, 0),
        ("income", disclosure.OTHER_DONORS, "", 1, 200_000, 0),
        ("refunds", "退款 Refunds to donors", "", 1, 100_000, 0),
        ("spending", "elderly_meals", "鼓楼区", 1, 300_000, 40),
        ("closing", "available", "", 0, 100_000, 0),
        ("closing", "reserved", "", 0, 500_000, 0),
        ("closing", "disbursed", "", 0, 300_000, 0),
    ]
    (note,) = [x for x in rep.lines if x.section == "corrections"]
    assert "amount_minor: 200000 → 250000" in note.note
    csv_bytes, page = disclosure.to_csv(rep), disclosure.to_html(rep)
    assert csv_bytes.startswith(b"\xef\xbb\xbf") and '<meta charset="utf-8">' in page
    text = csv_bytes.decode("utf-8-sig") + page
    for private in ("王师傅", str(VOL), "张三", "银发助餐点餐费补贴", "银发助餐：周六"):
        assert private not in text
    assert "江东街道银发助餐专项基金" in page
    empty = await disclosure_report(db, FUND, "2027Q1")
    assert [x.amount_minor for x in empty.lines if x.section == "opening"] == [
        100_000,
        500_000,
        300_000,
    ]


async def test_a_gap_and_a_late_arrival_are_recorded(db: asyncpg.Connection) -> None:
    await prepare(db)
    log = Log()
    need = NeedSpec.model_validate(f.volunteer_need())
    for seq in (1, 3, 2):
        log.add(NeedPosted(need_id=N1, need=need), f"need:{N1}", COMMUNITY, Role.COMMUNITY, seq)
    log.add(NeedPosted(need_id=N2, need=need), "clock", "exchange", Role.SYSTEM, 0)
    await archive_batch(db, log.records()[:2])
    await archive_batch(db, log.records(2))
    found = await sequence_report(db)
    assert [(a["kind"], a["expected_seq"], a["got_seq"]) for a in found] == [
        ("gap", 2, 3),
        ("late", 4, 2),
    ]
    assert await sequence_report(db, rescan=True) == found
    assert (
        await db.fetchval(
            "SELECT last_seq FROM stream_positions WHERE stream_id = $1", f"need:{N1}"
        )
        == 3
    )


async def test_trail_of_a_need_and_of_a_fund_follow_every_step(
    db: asyncpg.Connection, archived: Log
) -> None:
    books, events = await load_books(db)
    need = trail.trail(books, events, need=N1)
    kinds = [s.event_type for s in need]
    assert kinds[0] == "NeedPosted" and "MatchProposed" in kinds and "MatchCompleted" in kinds
    assert kinds.index("MatchProposed") < kinds.index("MatchCompleted"), "in log order"
    fund = trail.trail(books, events, fund=FUND)
    fund_kinds = [s.event_type for s in fund]
    assert fund_kinds[0] == "FundOpened"
    assert fund_kinds.count("DonationReceived") == 2 and "DonationRefunded" in fund_kinds
    assert "王师傅" not in trail.render(fund), "a fund's trail names no volunteer"
