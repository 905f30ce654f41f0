"""The invariant checker on a small log with known answers: one of each broken promise is
planted among events that keep them, and exactly those are reported, with their events."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from schemas.common import Money, TimeWindow
from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    DonationRefunded,
    FundOpened,
    MatchCompleted,
    MatchDeclined,
    MatchProposed,
    Message,
    NeedPosted,
    PledgeMade,
    SupplyKind,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from services.audit.invariants import check_log
from tests import factories as f

pytestmark = pytest.mark.unit

T0 = f.T0


def ev(payload: Message, minutes: int = 0) -> Envelope[Message]:
    return f.envelope(payload, at=T0 + timedelta(minutes=minutes))


def cny(amount: int) -> Money:
    return Money(amount_minor=amount, currency="CNY")


def fund_match(need: uuid.UUID, fund: uuid.UUID, amount: int) -> MatchProposed:
    return MatchProposed(match_id=uuid.uuid4(), need_id=need, supply=SupplyKind.FUND,
                         fund_id=fund, amount=cny(amount), zone="z", rule="test")  # fmt: skip


def shift_match(need: uuid.UUID, vol: uuid.UUID, start_h: float, hours: float) -> MatchProposed:
    start = T0 + timedelta(hours=start_h)
    window = TimeWindow(start=start, end=start + timedelta(hours=hours))
    return MatchProposed(match_id=uuid.uuid4(), need_id=need, supply=SupplyKind.VOLUNTEER,
                         volunteer_id=vol, shift=window, minutes=window.minutes, zone="z",
                         rule="test")  # fmt: skip


class World:
    """Given: a fund of 800,000 earmarked for elderly meals in 鼓楼区, two money needs (one of
    another category), a shift need, and a volunteer with a 6-hour weekly limit."""

    def __init__(self) -> None:
        self.fund, self.need, self.other_need = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        self.shift_need, self.vol = uuid.uuid4(), uuid.uuid4()
        self.log: list[Envelope[Message]] = [
            ev(FundOpened(fund_id=self.fund, fund=FundSpec.model_validate(f.fund()))),
            ev(DonationReceived(fund_id=self.fund, donation_id=uuid.uuid4(),
                                donation=DonationSpec.model_validate(f.donation(800_000)))),
            ev(NeedPosted(need_id=self.need,
                          need=NeedSpec.model_validate(f.money_need(500_000)))),
            ev(NeedPosted(need_id=self.other_need, need=NeedSpec.model_validate(
                f.money_need(100_000, category="tutoring")))),
            ev(NeedPosted(need_id=self.shift_need, need=NeedSpec.model_validate(
                f.volunteer_need(volunteers_needed=5)))),
            ev(PledgeMade(volunteer_id=self.vol, pledge=PledgeSpec.model_validate(f.pledge()))),
        ]  # fmt: skip

    def add(self, payload: Message, minutes: int = 1) -> uuid.UUID:
        e = ev(payload, minutes)
        self.log.append(e)
        return e.event_id


def test_a_log_that_keeps_every_promise_is_clean() -> None:
    w = World()
    m = fund_match(w.need, w.fund, 500_000)
    w.add(m)
    w.add(MatchCompleted(match_id=m.match_id, need_id=w.need, amount=cny(500_000)))
    w.add(shift_match(w.shift_need, w.vol, 0, 2))
    w.add(shift_match(w.shift_need, w.vol, 2, 2))  # back to back: no overlap

    checker = check_log(w.log)

    assert checker.violations == []
    assert checker.events == len(w.log)


def test_planted_violations_are_each_reported_with_their_events() -> None:
    w = World()
    first = fund_match(w.need, w.fund, 500_000)
    first_id = w.add(first)
    over = fund_match(w.need, w.fund, 400_000)  # 900,000 > 800,000 and > the need's 500,000
    over_id = w.add(over)
    earmark_id = w.add(fund_match(w.other_need, w.fund, 1))  # tutoring: not earmarked
    a = w.add(shift_match(w.shift_need, w.vol, 0, 2))
    b = w.add(shift_match(w.shift_need, w.vol, 1, 2))  # overlaps a
    c = w.add(shift_match(w.shift_need, w.vol, 24, 3))  # same week: 2+2+3 h > 6 h

    violations = check_log(w.log).violations
    found = {(v.kind, v.subject): v for v in reversed(violations)}  # the first of each kind

    assert set(found) == {
        ("over-spent", w.fund),
        ("over-filled", w.need),
        ("earmark", w.fund),
        ("double-booked", w.vol),
        ("over-weekly-limit", w.vol),
    }
    assert found[("over-spent", w.fund)].events[-1] == over_id
    # while the fund stays over-spent, every further proposal on it is reported too
    assert [v.events[-1] for v in violations if v.kind == "over-spent"] == [over_id, earmark_id]
    assert first_id in found[("over-spent", w.fund)].events
    assert found[("over-filled", w.need)].events == (first_id, over_id)
    assert found[("earmark", w.fund)].events == (earmark_id,)
    assert found[("double-booked", w.vol)].events == (a, b)
    assert found[("over-weekly-limit", w.vol)].events == (a, b, c)


def test_ended_matches_give_back_what_they_held_and_refunds_count() -> None:
    w = World()
    m = fund_match(w.need, w.fund, 500_000)
    w.add(m)
    w.add(MatchDeclined(match_id=m.match_id, need_id=w.need))
    w.add(fund_match(w.need, w.fund, 500_000))  # the money is free again: fine
    refund = w.add(DonationRefunded(fund_id=w.fund, donation_id=uuid.uuid4(),
                                    refund_id=uuid.uuid4(), amount=cny(400_000),
                                    reason="donor asked"))  # fmt: skip

    violations = check_log(w.log).violations

    assert [(v.kind, v.events[-1]) for v in violations] == [("over-spent", refund)]


def test_a_second_copy_of_an_event_is_counted_once() -> None:
    w = World()
    w.add(fund_match(w.need, w.fund, 500_000))
    w.log.append(w.log[-1])

    assert check_log(w.log).violations == []
