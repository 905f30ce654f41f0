"""The audit reports' books are the ledger's fold, not a reading of their own.

Given a realistic month of one fund, two money needs, a shift need and a volunteer (every kind
of match ending, a need amended below what was matched, a pledge amended and withdrawn, a need
cancelled, a completion for a match never proposed and an event the ledger sets aside), when it
is folded through `Books` and through a bare `ProjectionFold`, then needs, matches and every
account balance are the same, and what the reports add (proposal and settling order, donations,
organisation names) is noted from the events.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest

from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    DonationRefunded,
    EventCorrected,
    FundOpened,
    MatchAccepted,
    MatchCompleted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    Message,
    NeedAmended,
    NeedCancelled,
    NeedPosted,
    NoShowRecorded,
    OrganisationRegistered,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    VolunteerRegistered,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from services.audit.reports.books import Books, fold
from services.domain.projection_fold import ProjectionFold
from tests import factories as f

pytestmark = pytest.mark.unit

FOUNDATION, COMMUNITY = str(uuid.uuid4()), str(uuid.uuid4())


class Story:
    """Envelopes one minute apart, each with the actor who would have caused it."""

    def __init__(self) -> None:
        self.envs: list[Envelope[Message]] = []
        self.ids: dict[str, uuid.UUID] = {}

    def add(self, payload: Message, org: str = COMMUNITY) -> Envelope[Message]:
        at = f.T0 + timedelta(minutes=len(self.envs))
        env = f.envelope(payload, at=at, org=org, stream=_stream(payload))
        self.envs.append(env)
        return env


def _stream(payload: Message) -> str:
    """The stream the event belongs to, as its owning service numbers it."""
    for kind in ("match", "need", "fund", "volunteer", "org"):
        found = getattr(payload, f"{kind}_id", None)
        if found is not None:
            return f"{kind}:{found}".replace("org:", "organisation:")
    return "test"


def _ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def _money(amount: int) -> dict[str, Any]:
    return {"amount_minor": amount, "currency": "CNY"}


def _fund_match(match: uuid.UUID, need: uuid.UUID, fund: uuid.UUID, amount: int) -> MatchProposed:
    return MatchProposed(
        match_id=match,
        need_id=need,
        supply="fund",
        fund_id=fund,
        amount=_money(amount),
        zone="z",
        rule="test",
    )


def _shift(match: uuid.UUID, need: uuid.UUID, vol: uuid.UUID, minutes: int) -> MatchProposed:
    spec = NeedSpec.model_validate(f.volunteer_need())
    return MatchProposed(
        match_id=match,
        need_id=need,
        supply="volunteer",
        volunteer_id=vol,
        shift=spec.shift,
        minutes=minutes,
        zone="z",
        rule="test",
    )


def story() -> Story:
    """Every change `project` knows, in an order a month of the exchange could produce."""
    s = Story()
    fund, don_a, don_b, vol = _ids(4)
    n1, n2, n3, n4 = _ids(4)
    m1, m2, m3, m4, m5, m6, m7 = _ids(7)
    s.ids = dict(fund=fund, don_a=don_a, don_b=don_b, vol=vol, n1=n1, n2=n2, n3=n3, n4=n4)
    s.ids |= dict(m1=m1, m2=m2, m3=m3, m4=m4, m5=m5, m6=m6, m7=m7)
    for org, kind, name in (
        (FOUNDATION, "foundation", "江东街道慈善基金会"),
        (COMMUNITY, "community", "金陵名人居社区"),
    ):
        s.add(
            OrganisationRegistered(org_id=org, kind=kind, name=name, district="鼓楼区"),
            "operator",
        )
    s.add(FundOpened(fund_id=fund, fund=FundSpec.model_validate(f.fund())), FOUNDATION)
    for did, donor, amount in ((don_a, "金陵名人居业主委员会", 800_000), (don_b, "张三", 200_000)):
        spec = DonationSpec.model_validate(f.donation(amount, donor=donor))
        s.add(DonationReceived(fund_id=fund, donation_id=did, donation=spec), FOUNDATION)
    s.add(NeedPosted(need_id=n1, need=NeedSpec.model_validate(f.money_need(300_000))))
    s.add(NeedPosted(need_id=n2, need=NeedSpec.model_validate(f.money_need(500_000))))
    s.add(NeedPosted(need_id=n3, need=NeedSpec.model_validate(f.volunteer_need())))
    s.add(NeedPosted(need_id=n4, need=NeedSpec.model_validate(f.money_need(50_000))))
    # money: one delivered, one expired then matched again in part, one on a cancelled need
    s.add(_fund_match(m1, n1, fund, 300_000), "exchange")
    s.add(MatchAccepted(match_id=m1, need_id=n1))
    s.add(MatchCompleted(match_id=m1, need_id=n1, amount=_money(300_000)))
    s.add(_fund_match(m2, n2, fund, 500_000), "exchange")
    s.add(MatchExpired(match_id=m2, need_id=n2), "exchange")
    s.add(_fund_match(m5, n2, fund, 200_000), "exchange")
    smaller = NeedSpec.model_validate(f.money_need(150_000))
    s.add(NeedAmended(need_id=n2, need=smaller, changed=["amount"]))
    s.add(_fund_match(m6, n4, fund, 50_000), "exchange")
    s.add(NeedCancelled(need_id=n4, reason="活动取消"))
    s.add(MatchWithdrawn(match_id=m6, need_id=n4, reason="the need was cancelled"), "exchange")
    refund = DonationRefunded(
        fund_id=fund, donation_id=don_b, refund_id=uuid.uuid4(), amount=_money(100_000), reason="r"
    )
    s.add(refund, FOUNDATION)
    s.add(
        EventCorrected(
            corrects_event_id=s.envs[4].event_id,
            corrects_event_type="DonationReceived",
            reason="amount mistyped",
            replacement={"fund_id": str(fund), "donation": {"amount": _money(250_000)}},
        ),
        FOUNDATION,
    )
    # minutes: pledged, declined, served short, amended, no-show, withdrawn
    s.add(VolunteerRegistered(volunteer_id=vol, pseudonym="王师傅", home={"district": "鼓楼区"}))
    s.add(PledgeMade(volunteer_id=vol, pledge=PledgeSpec.model_validate(f.pledge())), str(vol))
    s.add(_shift(m3, n3, vol, 120), "exchange")
    s.add(_shift(m4, n3, vol, 60), "exchange")
    s.add(MatchDeclined(match_id=m4, need_id=n3), str(vol))
    s.add(MatchCompleted(match_id=m3, need_id=n3, minutes_served=90))
    shorter = f.pledge(
        availability=[
            {"start": f.iso(f.T0 - timedelta(hours=1)), "end": f.iso(f.T0 + timedelta(hours=2))}
        ]
    )
    s.add(PledgeAmended(volunteer_id=vol, pledge=PledgeSpec.model_validate(shorter)), str(vol))
    s.add(_shift(m7, n3, vol, 60), "exchange")
    s.add(NoShowRecorded(match_id=m7, need_id=n3, volunteer_id=vol))
    s.add(PledgeWithdrawn(volunteer_id=vol, reason="搬家"), str(vol))
    # a completion for a match never proposed moves nothing, in the ledger as here
    s.add(MatchCompleted(match_id=uuid.uuid4(), need_id=n1, amount=_money(1)))
    # a donation no journal can hold (older bytes, before Money was capped): the ledger sets
    # it aside, so the books have neither its lines nor a donation to report
    s.ids["too_big"] = uuid.uuid4()
    s.add(_unstorable_donation(fund, s.ids["too_big"]), FOUNDATION)
    return s


def _unstorable_donation(fund: uuid.UUID, donation: uuid.UUID) -> Message:
    spec = DonationSpec.model_validate(f.donation())
    amount = spec.amount.model_copy(update={"amount_minor": 2**63})  # past bigint
    valid = DonationReceived(fund_id=fund, donation_id=donation, donation=spec)
    return valid.model_copy(update={"donation": spec.model_copy(update={"amount": amount})})


@pytest.fixture(scope="module")
def told() -> tuple[Story, Books, ProjectionFold]:
    """The story, folded through the books and through the ledger's bare fold."""
    s = story()
    bare = ProjectionFold()
    for env in s.envs:
        bare.apply(env)
    return s, fold(s.envs), bare


def test_the_books_and_the_ledgers_fold_agree_on_needs_matches_and_balances(
    told: tuple[Story, Books, ProjectionFold],
) -> None:
    _, books, bare = told
    needs = {
        k[0]: (r["filled"], r["completed"], r["status"]) for k, r in bare.tables["rm_needs"].items()
    }
    assert {n.need_id: (n.filled, n.completed, n.status) for n in books.needs.values()} == needs
    matches = {k[0]: r["status"] for k, r in bare.tables["rm_matches"].items()}
    assert {m.match_id: m.status for m in books.matches.values()} == matches
    assert {a: books.balance(a) for a in bare.balances} == bare.balances
    assert {a: b for (a, _), b in books.accounts.items()} == bare.balances
    assert books.projection.set_aside == bare.set_aside and len(bare.set_aside) == 1
    funds = {k[0]: r["name"] for k, r in bare.tables["rm_funds"].items()}
    assert {x.fund_id: x.name for x in books.funds.values()} == funds
    pledges = {k[0]: (r["pseudonym"], r["status"]) for k, r in bare.tables["rm_pledges"].items()}
    assert {v.volunteer_id: (v.pseudonym, v.status) for v in books.volunteers.values()} == pledges


def test_the_story_ends_as_worked_out_by_hand(told: tuple[Story, Books, ProjectionFold]) -> None:
    s, books, _ = told
    i = s.ids
    assert books.fund_balances(i["fund"]) == {
        "available": 400_000,  # 1,000,000 - 100,000 refunded - 300,000 - 200,000 held
        "reserved": 200_000,
        "disbursed": 300_000,
    }
    state = {k: (n.filled, n.completed, n.status) for k, n in books.needs.items()}
    assert state == {
        i["n1"]: (300_000, 300_000, "fulfilled"),
        i["n2"]: (200_000, 0, "matched"),  # amended down to 150,000 with 200,000 held
        i["n3"]: (1, 1, "partially_matched"),
        i["n4"]: (0, 0, "cancelled"),
    }
    assert books.volunteer_minutes(i["vol"]) == {
        "offered": 0,
        "reserved": 0,
        "served": 90,
        "pledged": 90,
    }
    assert books.volunteers[i["vol"]].status == "withdrawn"
    assert i["too_big"] not in books.donations and books.events == len(s.envs)


def test_the_books_note_when_each_match_was_proposed_and_settled(
    told: tuple[Story, Books, ProjectionFold],
) -> None:
    s, books, _ = told
    index = {env.event_id: n for n, env in enumerate(s.envs)}
    for m in books.matches.values():
        assert s.envs[m.proposed].payload.match_id == m.match_id  # type: ignore[attr-defined]
        if m.status in ("proposed", "accepted"):
            assert m.settled is None and m.settled_event is None
            continue
        assert m.settled_event is not None and index[m.settled_event] == m.settled
        settling = s.envs[index[m.settled_event]]
        assert (m.settled_at, m.settled_by) == (settling.recorded_at, settling.actor.org_id)
    m1 = books.matches[s.ids["m1"]]
    assert (m1.status, m1.settled_by) == ("completed", COMMUNITY)
    assert books.matches[s.ids["m3"]].minutes_served == 90
    assert books.donations[s.ids["don_b"]].refunded_minor == 100_000
    assert books.organisations == {FOUNDATION: "江东街道慈善基金会", COMMUNITY: "金陵名人居社区"}
    assert [c.event_type for c in books.corrections] == ["EventCorrected"]


def test_the_books_as_of_a_moment_are_the_fold_of_the_events_recorded_by_then(
    told: tuple[Story, Books, ProjectionFold],
) -> None:
    s, _, _ = told
    for cut in range(len(s.envs) + 1):
        bare = ProjectionFold()
        for env in s.envs[:cut]:
            bare.apply(env)
        then = fold(s.envs, s.envs[cut - 1].recorded_at if cut else f.T0 - timedelta(seconds=1))
        assert {a: then.balance(a) for a in bare.balances} == bare.balances
        status = {k[0]: r["status"] for k, r in bare.tables["rm_needs"].items()}
        assert {n.need_id: n.status for n in then.needs.values()} == status
