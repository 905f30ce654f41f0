"""Intake decisions: accept or refuse with a reason, deterministically, once per posting."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from pydantic import ValidationError

from schemas.envelope import derive_id
from schemas.messages import (
    DonationReceived,
    FundOpened,
    FundReserveSet,
    NeedPosted,
    OpenFund,
    PostingRefused,
    PostNeed,
    ReceiveDonation,
    SetFundReserve,
)
from schemas.specs import DonationSpec, FundSpec, NeedSpec
from services.domain.intake import IntakeState, decide
from tests import factories as f

pytestmark = pytest.mark.unit


def post_need(need_id: uuid.UUID | None = None, **over: object) -> PostNeed:
    return PostNeed(
        need_id=need_id or uuid.uuid4(), need=NeedSpec.model_validate(f.volunteer_need(**over))
    )


def test_an_accepted_need_gets_an_id_derived_from_its_posting() -> None:
    posting = f.envelope(post_need())
    [event] = decide(IntakeState(), posting)
    assert isinstance(event.payload, NeedPosted)
    assert event.event_id == derive_id(posting.event_id, "decided")
    assert event.causation_id == posting.event_id
    assert event.stream_seq == 1
    assert event.recorded_at == posting.recorded_at  # no clock read


def test_the_same_posting_twice_is_decided_once() -> None:
    state, posting = IntakeState(), f.envelope(post_need())
    assert len(decide(state, posting)) == 1
    assert decide(state, posting) == []


def test_deciding_again_from_scratch_gives_identical_bytes() -> None:
    postings = [f.envelope(post_need()) for _ in range(3)]
    a = [e.model_dump_json() for p in postings for e in decide(IntakeState(), p)]
    b = [e.model_dump_json() for p in postings for e in decide(IntakeState(), p)]
    assert a == b


def test_a_need_whose_deadline_has_passed_is_refused() -> None:
    posting = f.envelope(post_need(), at=f.T0 + timedelta(days=1))
    [event] = decide(IntakeState(), posting)
    assert isinstance(event.payload, PostingRefused)
    assert event.payload.problems[0].field == "need.deadline"


def test_a_donation_needs_an_open_fund_in_its_currency() -> None:
    state = IntakeState()
    fund_id = uuid.uuid4()
    donate = ReceiveDonation(
        fund_id=fund_id,
        donation_id=uuid.uuid4(),
        donation=DonationSpec.model_validate(f.donation()),
    )
    [refused] = decide(state, f.envelope(donate))
    assert (
        isinstance(refused.payload, PostingRefused)
        and refused.payload.problems[0].field == "fund_id"
    )

    [opened] = decide(
        state, f.envelope(OpenFund(fund_id=fund_id, fund=FundSpec.model_validate(f.fund())))
    )
    assert isinstance(opened.payload, FundOpened)
    donate2 = ReceiveDonation(
        fund_id=fund_id,
        donation_id=uuid.uuid4(),
        donation=DonationSpec.model_validate(f.donation()),
    )
    [received] = decide(state, f.envelope(donate2))
    assert isinstance(received.payload, DonationReceived)
    assert received.stream_seq == 3  # refused, opened, received: one stream per fund

    usd = ReceiveDonation(
        fund_id=fund_id,
        donation_id=uuid.uuid4(),
        donation=DonationSpec.model_validate(
            {"donor": "Friends", "amount": {"amount_minor": 100, "currency": "USD"}}
        ),
    )
    [wrong] = decide(state, f.envelope(usd))
    assert isinstance(wrong.payload, PostingRefused)
    assert wrong.payload.problems[0].field == "donation.amount.currency"


def test_a_need_id_is_posted_once() -> None:
    state, need_id = IntakeState(), uuid.uuid4()
    decide(state, f.envelope(post_need(need_id)))
    [again] = decide(state, f.envelope(post_need(need_id)))
    assert isinstance(again.payload, PostingRefused)


def test_only_the_foundation_that_opened_a_fund_sets_its_reserve_from_0_to_100() -> None:
    # Given a fund opened by one foundation with a 75 % reserve
    state, fund_id = IntakeState(), uuid.uuid4()
    spec = FundSpec.model_validate(f.fund())
    opening = OpenFund(fund_id=fund_id, fund=spec, urgent_reserve_percent=75)
    [opened] = decide(state, f.envelope(opening, org="jiangdong"))
    assert isinstance(opened.payload, FundOpened) and opened.payload.urgent_reserve_percent == 75
    # When another organisation tries to change it, it is refused naming the fund
    change = SetFundReserve(fund_id=fund_id, urgent_reserve_percent=20)
    [refused] = decide(state, f.envelope(change, org="someone-else"))
    assert isinstance(refused.payload, PostingRefused)
    assert refused.payload.problems[0].field == "fund_id"
    # and the foundation itself changes it, on the fund's own stream
    [done] = decide(state, f.envelope(change, org="jiangdong"))
    assert done.payload == FundReserveSet(fund_id=fund_id, urgent_reserve_percent=20)
    assert done.stream_id == f"fund:{fund_id}" and done.stream_seq == 3
    # A fund never opened has no reserve to set; a share outside 0..100 is no command at all
    [unknown] = decide(
        state, f.envelope(SetFundReserve(fund_id=uuid.uuid4(), urgent_reserve_percent=5))
    )
    assert isinstance(unknown.payload, PostingRefused)
    with pytest.raises(ValidationError, match="urgent_reserve_percent"):
        SetFundReserve(fund_id=fund_id, urgent_reserve_percent=101)
