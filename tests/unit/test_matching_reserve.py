"""Urgent needs first over time: what a fund holds back for high and critical needs, and a
volunteer's hours held for urgent shifts, until the horizon passes (services.domain.matching
.reserve). Pure: time is only the events' recorded times and clock ticks."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest

from schemas.envelope import Envelope
from schemas.messages import (
    ClockTicked,
    DonationReceived,
    FundOpened,
    FundReserveSet,
    MatchProposed,
    Message,
    NeedPosted,
    PledgeMade,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from services.domain.matching import (
    URGENT_FUND_RESERVE_PERCENT,
    URGENT_RESERVES,
    MatcherState,
    apply,
)
from tests import factories as f

pytestmark = pytest.mark.unit

FAR = f.T0 + timedelta(days=10)
"""A deadline well beyond the reserve's horizon (48 h)."""


def posted(
    urgency: str, amount: int, deadline: datetime = FAR
) -> tuple[uuid.UUID, Envelope[Message]]:
    nid = uuid.uuid4()
    body = f.money_need(amount, urgency=urgency, deadline=f.iso(deadline))
    return nid, f.envelope(NeedPosted(need_id=nid, need=NeedSpec.model_validate(body)))


def fund(
    amount: int,
    percent: int = URGENT_FUND_RESERVE_PERCENT,
    fid: uuid.UUID | None = None,
    **over: Any,
) -> list[Envelope[Message]]:
    """A fund its foundation opens holding back `percent` for urgent needs, and a donation."""
    fid = fid or uuid.uuid4()
    spec = FundSpec.model_validate(f.fund(**over))
    gift = DonationSpec.model_validate(f.donation(amount))
    return [
        f.envelope(FundOpened(fund_id=fid, fund=spec, urgent_reserve_percent=percent)),
        f.envelope(DonationReceived(fund_id=fid, donation_id=uuid.uuid4(), donation=gift)),
    ]


def set_reserve(fid: uuid.UUID, percent: int) -> Envelope[Message]:
    return f.envelope(FundReserveSet(fund_id=fid, urgent_reserve_percent=percent))


def tick(at: datetime) -> Envelope[Message]:
    return f.envelope(ClockTicked(at=at), at=at)


def paid(state: MatcherState, events: list[Envelope[Message]]) -> dict[uuid.UUID, int]:
    out: dict[uuid.UUID, int] = {}
    for event in events:
        for d in apply(state, event):
            p = d.payload
            if isinstance(p, MatchProposed) and p.amount is not None:
                out[p.need_id] = out.get(p.need_id, 0) + p.amount.amount_minor
    return out


def test_money_waiting_in_a_fund_keeps_its_reserve_for_a_critical_need_posted_later() -> None:
    # Given a fund of 1,000 yuan (a 75 % reserve) and a normal need of 900 yuan posted first
    normal, first = posted("normal", 90_000)
    critical, later = posted("critical", 70_000)
    state = MatcherState(policy=URGENT_RESERVES)
    # When the critical need of 700 yuan comes after
    got = paid(state, [*fund(100_000), first, later])
    # Then the normal need got only what lies beyond the reserve, and the critical need its all
    assert URGENT_FUND_RESERVE_PERCENT == 75
    assert got == {normal: 25_000, critical: 70_000}


def test_a_fund_whose_foundation_holds_nothing_back_pays_whoever_comes_first() -> None:
    # Given the same fund opened with no reserve (the exchange's default) and the same needs
    normal, first = posted("normal", 90_000)
    critical, later = posted("critical", 70_000)
    # When the critical need comes after the normal one
    got = paid(MatcherState(), [*fund(100_000, percent=0), first, later])
    # Then the normal need took what it asked and the critical need found only the rest
    assert got == {normal: 90_000, critical: 10_000}


def test_the_foundation_changes_its_reserve_later_and_nothing_promised_moves() -> None:
    # Given a fund opened with no reserve that has paid a normal need 300 yuan
    fid = uuid.uuid4()
    first_need, first = posted("normal", 30_000)
    state = MatcherState()
    assert paid(state, [*fund(100_000, percent=0, fid=fid), first]) == {first_need: 30_000}
    # When its foundation holds back 75 % and a normal need of 600 yuan comes
    normal, second = posted("normal", 60_000)
    got = paid(state, [set_reserve(fid, 75), second])
    # Then the proposal already made stands, and the normal need gets nothing of the 700 yuan
    # left: all of it is within the reserve (750)
    assert got == {}
    assert [p.status for p in state.proposals.values()] == ["proposed"]
    assert state.funds[fid].reserve == 75_000
    # When the foundation lowers the reserve to 10 %, what that frees goes at once to the
    # normal need that waited, and a critical need coming after finds the 100 yuan kept
    critical, third = posted("critical", 70_000)
    assert paid(state, [set_reserve(fid, 10)]) == {normal: 60_000}
    assert paid(state, [third]) == {critical: 10_000}


def shift(urgency: str, start: datetime, hours: int) -> tuple[uuid.UUID, Envelope[Message]]:
    nid = uuid.uuid4()
    window = {"start": f.iso(start), "end": f.iso(start + timedelta(hours=hours))}
    body = f.volunteer_need(
        urgency=urgency,
        shift=window,
        deadline=f.iso(start + timedelta(hours=hours)),
        volunteers_needed=1,
    )
    return nid, f.envelope(NeedPosted(need_id=nid, need=NeedSpec.model_validate(body)))


def test_half_a_volunteers_week_waits_for_urgent_shifts_until_the_horizon() -> None:
    # Given a volunteer with 6 hours a week, free all of Monday to Wednesday
    monday = f.T0 + timedelta(days=2)
    free = [{"start": f.iso(monday), "end": f.iso(monday + timedelta(days=3))}]
    vid = uuid.uuid4()
    pledge = PledgeSpec.model_validate(f.pledge(availability=free, weekly_hour_limit=6))
    normal_long, a = shift("normal", monday + timedelta(hours=1), 4)
    normal_short, b = shift("normal", monday + timedelta(hours=6), 3)
    critical, c = shift("critical", monday + timedelta(days=1), 3)
    state = MatcherState(policy=URGENT_RESERVES)
    booked: list[uuid.UUID] = []
    for event in [f.envelope(PledgeMade(volunteer_id=vid, pledge=pledge)), a, b, c]:
        booked += [d.payload.need_id for d in apply(state, event) if is_proposal(d)]
    # Then a normal shift may book only half the week (3 h), and the critical shift the rest
    assert booked == [normal_short, critical]
    # and the longer normal shift, once within 48 h of its start, finds the week full
    assert apply(state, tick(monday - timedelta(hours=46))) == []
    assert normal_long not in booked


def is_proposal(d: Envelope[Message]) -> bool:
    return isinstance(d.payload, MatchProposed)
