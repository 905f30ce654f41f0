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
    MatchProposed,
    Message,
    NeedPosted,
    PledgeMade,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from services.domain.matching import URGENT_RESERVES, MatcherState, apply
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


def fund(amount: int, **over: Any) -> list[Envelope[Message]]:
    fid = uuid.uuid4()
    spec = FundSpec.model_validate(f.fund(**over))
    gift = DonationSpec.model_validate(f.donation(amount))
    return [
        f.envelope(FundOpened(fund_id=fid, fund=spec)),
        f.envelope(DonationReceived(fund_id=fid, donation_id=uuid.uuid4(), donation=gift)),
    ]


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
    assert URGENT_RESERVES.urgent_reserve_percent == 75
    assert got == {normal: 25_000, critical: 70_000}


def test_a_need_within_its_horizon_draws_on_the_reserve_at_the_next_tick() -> None:
    # Given a normal need held back by the reserve
    normal, need = posted("normal", 90_000)
    state = MatcherState(policy=URGENT_RESERVES)
    assert paid(state, [*fund(100_000), need]) == {normal: 25_000}
    # When the clock passes 48 hours before its deadline
    before = paid(state, [tick(FAR - timedelta(hours=49))])
    after = paid(state, [tick(FAR - timedelta(hours=47))])
    # Then nothing moves before the horizon, and the need gets the rest it wants after it
    assert before == {} and after == {normal: 65_000}


def test_at_its_horizon_a_low_need_leaves_what_a_waiting_normal_need_still_wants() -> None:
    # Given a low need due soon and a normal need due later, both held back by the reserve
    soon = f.T0 + timedelta(days=3)
    low, first = posted("low", 50_000, deadline=soon)
    normal, second = posted("normal", 60_000)
    state = MatcherState(policy=URGENT_RESERVES)
    assert paid(state, [*fund(100_000), first, second]) == {low: 25_000}
    # When the low need's horizon passes
    got = paid(state, [tick(soon - timedelta(hours=47))])
    # Then it takes only what the more urgent waiting need does not want (75 - 60 = 15 yuan)
    assert got == {low: 15_000}
    # and the normal need gets its 600 yuan at its own horizon
    assert paid(state, [tick(FAR - timedelta(hours=47))]) == {normal: 60_000}


def test_a_fund_near_its_end_of_validity_frees_its_whole_reserve() -> None:
    # Given a fund valid for three more days, and a normal need held back by its reserve
    until = f.T0 + timedelta(days=3)
    normal, need = posted("normal", 90_000)
    state = MatcherState(policy=URGENT_RESERVES)
    assert paid(state, [*fund(100_000, valid_until=f.iso(until)), need]) == {normal: 25_000}
    # When the clock passes 48 hours before the fund's end
    got = paid(state, [tick(until - timedelta(hours=47))])
    # Then the reserve is spent before it expires
    assert got == {normal: 65_000}


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
