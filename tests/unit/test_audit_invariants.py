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
    MatchWithdrawn,
    Message,
    NeedPosted,
    PledgeMade,
    SupplyKind,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from services.audit.reports.invariants import SETTLE, check_log
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


def refund(w: World, amount: int, minutes: int = 1) -> uuid.UUID:
    return w.add(DonationRefunded(fund_id=w.fund, donation_id=uuid.uuid4(),
                                  refund_id=uuid.uuid4(), amount=cny(amount),
                                  reason="donor asked"), minutes)  # fmt: skip


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
    """A refund that leaves the fund over-reserved, never answered by a withdrawal: pending
    while the matcher may still answer, a violation once `SETTLE` has passed."""
    w = World()
    m = fund_match(w.need, w.fund, 500_000)
    w.add(m)
    w.add(MatchDeclined(match_id=m.match_id, need_id=w.need))
    held = w.add(fund_match(w.need, w.fund, 500_000))  # the money is free again: fine
    refund_id = refund(w, 400_000)  # 500,000 reserved of 400,000, and no withdrawal follows

    checker = check_log(w.log)
    refunded_at = w.log[-1].recorded_at

    assert checker.violations == []
    assert [(p.fund_id, p.refund) for p in checker.pending(refunded_at)] == [(w.fund, refund_id)]
    assert checker.verdict(refunded_at + SETTLE - timedelta(seconds=1)) == []
    late = checker.verdict(refunded_at + SETTLE)
    assert [(v.kind, v.subject, v.events[-1]) for v in late] == [("over-spent", w.fund, refund_id)]
    assert held in late[0].events
    assert checker.pending(refunded_at + SETTLE) == []


def test_a_second_copy_of_an_event_is_counted_once() -> None:
    w = World()
    w.add(fund_match(w.need, w.fund, 500_000))
    w.log.append(w.log[-1])

    assert check_log(w.log).violations == []


def test_a_refund_the_matcher_answers_with_a_withdrawal_is_not_an_overspend() -> None:
    """Case 6: two proposals hold all of the fund, part of it is refunded, and the fund's owner
    withdraws the newest proposal right after (docs/architecture.md, "Departures")."""
    w = World()
    second = uuid.uuid4()
    w.add(NeedPosted(need_id=second, need=NeedSpec.model_validate(f.money_need(400_000))))
    older = fund_match(w.need, w.fund, 400_000)
    newer = fund_match(second, w.fund, 400_000)
    w.add(older)
    w.add(newer)  # 800,000 reserved of 800,000
    refund(w, 300_000)  # 800,000 reserved of 500,000: until the matcher answers
    w.add(MatchWithdrawn(match_id=newer.match_id, need_id=second,
                         reason="the fund refunded a donation"))  # fmt: skip

    checker = check_log(w.log)

    assert checker.violations == []
    assert checker.verdict(T0 + timedelta(days=1)) == []
    assert checker.pending(T0) == []


def test_a_refund_of_money_already_disbursed_is_reported_at_once() -> None:
    """Confirmed money cannot be taken back: no waiting for the matcher."""
    w = World()
    paid = fund_match(w.need, w.fund, 500_000)
    w.add(paid)
    w.add(MatchCompleted(match_id=paid.match_id, need_id=w.need, amount=cny(500_000)))
    refund_id = refund(w, 400_000)  # 500,000 disbursed of 400,000

    violations = check_log(w.log).violations

    assert [(v.kind, v.subject, v.events[-1]) for v in violations] == [
        ("over-spent", w.fund, refund_id)
    ]
    assert "disbursed 500000 > donated-refunded 400000" in violations[0].detail


def test_a_confirmation_after_a_refund_beyond_the_fund_is_reported_at_once() -> None:
    """A reservation the refund left uncovered is confirmed before the matcher took it back
    (a hold on another partition confirmed before the revocation arrived): money went out
    that the fund no longer had."""
    w = World()
    second = uuid.uuid4()
    w.add(NeedPosted(need_id=second, need=NeedSpec.model_validate(f.money_need(400_000))))
    older, newer = fund_match(w.need, w.fund, 400_000), fund_match(second, w.fund, 400_000)
    w.add(older)
    w.add(newer)
    w.add(MatchCompleted(match_id=older.match_id, need_id=w.need, amount=cny(400_000)))
    refund(w, 500_000)  # 400,000 disbursed of 300,000 already: reported at the refund
    confirmed = w.add(MatchCompleted(match_id=newer.match_id, need_id=second,
                                     amount=cny(400_000)))  # fmt: skip

    violations = check_log(w.log).violations

    assert [v.events[-1] for v in violations][-1] == confirmed
    assert "at this confirmation, disbursed 800000" in violations[-1].detail


def test_a_proposal_over_the_fund_with_no_refund_pending_is_reported_at_once() -> None:
    """The over-reservation the matcher itself made, long after any refund was answered."""
    w = World()
    refund(w, 100_000)  # 700,000 left, nothing reserved: nothing to answer
    over = w.add(fund_match(w.need, w.fund, 500_000), minutes=60)
    over2 = w.add(fund_match(w.need, w.fund, 300_000), minutes=60)  # 800,000 of 700,000

    violations = check_log(w.log).violations

    assert [(v.kind, v.events[-1]) for v in violations if v.kind == "over-spent"] == [
        ("over-spent", over2)
    ]
    assert over in violations[0].events


def test_a_proposal_decided_before_the_refund_but_archived_after_waits_for_its_answer() -> None:
    """The ledger may archive a proposal after a later input of its partition (they are on
    different topics); the matcher saw the proposal first and its answer to the refund
    withdraws it. Until that answer is in, the fund is pending, not broken."""
    w = World()
    second = uuid.uuid4()
    w.add(NeedPosted(need_id=second, need=NeedSpec.model_validate(f.money_need(300_000))))
    refund_id = refund(w, 300_000, minutes=0)  # 500,000 left, nothing reserved yet
    early = fund_match(w.need, w.fund, 500_000)
    late = fund_match(second, w.fund, 300_000)
    w.log.append(ev(early, minutes=0))  # 500,000 of 500,000
    w.log.append(ev(late, minutes=-1))  # decided on an input recorded before the refund
    checker = check_log(w.log)
    assert checker.violations == []
    assert [p.refund for p in checker.pending(T0)] == [refund_id]

    w.add(MatchWithdrawn(match_id=late.match_id, need_id=second,
                         reason="the fund refunded a donation"))  # fmt: skip
    checker = check_log(w.log)

    assert checker.pending(T0) == []
    assert checker.verdict(T0 + timedelta(days=1)) == []


def test_an_over_reservation_covered_only_by_a_later_donation_is_not_broken() -> None:
    """No money leaves on a reservation: what counts is that nothing was confirmed beyond
    the fund (checked at once) and that the fund is within by the end."""
    w = World()
    w.add(fund_match(w.need, w.fund, 500_000))
    refund(w, 400_000)  # 500,000 reserved of 400,000
    w.add(DonationReceived(fund_id=w.fund, donation_id=uuid.uuid4(),
                           donation=DonationSpec.model_validate(f.donation(100_000))),
          minutes=120)  # fmt: skip

    checker = check_log(w.log)

    assert checker.verdict(T0 + timedelta(days=1)) == []
    assert checker.pending(T0) == []


def refund_case_inputs(partitions: int) -> list[Envelope[Message]]:
    """Case 6's inputs, decided by the real intake: a fund of 800,000 owned under its own id,
    two money needs of 400,000 in districts on different partitions, then a refund of
    300,000 (intake accepts it: it is within the donation; intake knows no reservations)."""
    from schemas.messages import OpenFund, ReceiveDonation, RefundDonation
    from services.domain import intake
    from services.domain.zones import fund_zone, partition_of
    from tests.partitioned import envelope as posted
    from tests.unit.test_matching_partitions import _districts_on_different_partitions

    at = T0 - timedelta(days=1)
    a, b = _districts_on_different_partitions(max(partitions, 2))
    spec = FundSpec.model_validate(f.fund(districts=[], categories=[]))  # owned as fund:<id>
    needs_on = {partition_of(a, partitions), partition_of(b, partitions)}
    fid = next(  # owned by a third partition when there is one, so holds must be revoked
        fid
        for i in range(1000)
        if partition_of(fund_zone(fid := uuid.uuid5(uuid.NAMESPACE_URL, f"fund/{i}"), spec),
                        partitions) not in needs_on or partitions < 3
    )  # fmt: skip
    don = uuid.uuid4()
    commands: list[Message] = [
        OpenFund(fund_id=fid, fund=spec),
        ReceiveDonation(fund_id=fid, donation_id=don,
                        donation=DonationSpec.model_validate(f.donation(800_000))),
        RefundDonation(fund_id=fid, donation_id=don, refund_id=uuid.uuid4(),
                       amount=cny(300_000), reason="捐赠人撤回部分捐款"),
    ]  # fmt: skip
    desk = intake.IntakeState()
    decided = [e for cmd in commands for e in intake.decide(desk, posted(cmd, at, "fdn"))]
    assert [type(e.payload) for e in decided] == [FundOpened, DonationReceived, DonationRefunded]
    needs = [
        posted(NeedPosted(need_id=uuid.uuid4(), need=NeedSpec.model_validate(
            {**f.money_need(400_000), "place": {"district": d}})), at, "c")
        for d in (a, b)
    ]  # fmt: skip
    return [*decided[:2], *needs, decided[2]]


def _refund_answered_by_the_matcher(partitions: int, seed: int) -> list[Envelope[Message]]:
    """Case 6 through the router and the matcher partitions, interleaved by a seeded
    scheduler; the log is in an order the ledger could archive it in."""
    from tests.partitioned import simulate

    return simulate(refund_case_inputs(partitions), partitions=partitions, seed=seed).archived


def test_the_real_matcher_answering_a_refund_leaves_a_clean_log() -> None:
    """Two proposals hold all of the fund, a part is refunded, the matcher withdraws (locally
    or by revoking a hold on another partition): clean, however the partitions interleave."""
    withdrawn = revoked = 0
    for partitions, seeds in ((1, range(5)), (4, range(30))):
        for seed in seeds:
            log = _refund_answered_by_the_matcher(partitions, seed)
            kinds = [type(e.payload).__name__ for e in log]
            withdrawn += "MatchWithdrawn" in kinds
            revoked += "SupplyRevoked" in kinds

            checker = check_log(log)

            assert checker.verdict(T0 + timedelta(days=1)) == [], (partitions, seed)
            assert checker.pending(T0) == [], (partitions, seed)
    assert withdrawn and revoked, "the refund was answered locally and across partitions"
