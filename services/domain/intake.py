"""Intake decisions: accept or refuse a posting the gateway accepted, given what came before.

`decide` is pure: the same postings in the same order always give the same events, ids
included. The state is everything earlier decisions established about the keys involved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    FundOpened,
    MakePledge,
    Message,
    NeedPosted,
    OpenFund,
    PledgeMade,
    PostingRefused,
    PostNeed,
    Problem,
    ReceiveDonation,
)
from services.domain.outputs import derived


@dataclass
class IntakeState:
    """What an intake service has decided so far (one service sees only its own kind)."""

    decided: set[uuid.UUID] = field(default_factory=set)
    stream_seq: dict[str, int] = field(default_factory=dict)
    needs: set[uuid.UUID] = field(default_factory=set)
    fund_currency: dict[uuid.UUID, str] = field(default_factory=dict)
    donations: set[uuid.UUID] = field(default_factory=set)
    volunteers: set[uuid.UUID] = field(default_factory=set)

    def next_seq(self, stream_id: str) -> int:
        """The next sequence number in a stream (1-based); advances the stream."""
        seq = self.stream_seq.get(stream_id, 0) + 1
        self.stream_seq[stream_id] = seq
        return seq


def stream_of(payload: Message) -> str:
    """The stream a command or event belongs to: its need, fund or volunteer."""
    if isinstance(payload, PostNeed | NeedPosted):
        return f"need:{payload.need_id}"
    if isinstance(payload, OpenFund | ReceiveDonation | FundOpened | DonationReceived):
        return f"fund:{payload.fund_id}"
    if isinstance(payload, MakePledge | PledgeMade):
        return f"volunteer:{payload.volunteer_id}"
    raise TypeError(f"no stream for {payload.TYPE}")


def _refusal(posting: Envelope[Message], reason: str, fld: str | None) -> PostingRefused:
    return PostingRefused(
        posting_id=posting.event_id,
        posting_type=posting.event_type,
        problems=[Problem(field=fld, reason=reason)],
    )


def _verdict(state: IntakeState, posting: Envelope[Message]) -> Message:
    """The one event this posting produces: the accepted fact, or a refusal with its reason."""
    cmd = posting.payload
    now = posting.recorded_at
    if isinstance(cmd, PostNeed):
        if cmd.need_id in state.needs:
            return _refusal(posting, "this need was already posted", "need_id")
        if cmd.need.deadline <= now:
            return _refusal(posting, "the deadline has already passed", "need.deadline")
        return NeedPosted(need_id=cmd.need_id, need=cmd.need)
    if isinstance(cmd, OpenFund):
        if cmd.fund_id in state.fund_currency:
            return _refusal(posting, "this fund is already open", "fund_id")
        return FundOpened(fund_id=cmd.fund_id, fund=cmd.fund)
    if isinstance(cmd, ReceiveDonation):
        currency = state.fund_currency.get(cmd.fund_id)
        if currency is None:
            return _refusal(posting, "no open fund has this id", "fund_id")
        if cmd.donation_id in state.donations:
            return _refusal(posting, "this donation was already recorded", "donation_id")
        if cmd.donation.amount.currency != currency:
            return _refusal(posting, f"the fund holds {currency} only", "donation.amount.currency")
        return DonationReceived(
            fund_id=cmd.fund_id, donation_id=cmd.donation_id, donation=cmd.donation
        )
    if isinstance(cmd, MakePledge):
        if cmd.volunteer_id in state.volunteers:
            return _refusal(posting, "this volunteer already has a pledge", "volunteer_id")
        return PledgeMade(volunteer_id=cmd.volunteer_id, pledge=cmd.pledge)
    return _refusal(posting, f"{posting.event_type} is not an intake posting", "event_type")


def evolve(state: IntakeState, event: Message) -> None:
    """Fold one decided event into the state."""
    if isinstance(event, NeedPosted):
        state.needs.add(event.need_id)
    elif isinstance(event, FundOpened):
        state.fund_currency[event.fund_id] = event.fund.currency
    elif isinstance(event, DonationReceived):
        state.donations.add(event.donation_id)
    elif isinstance(event, PledgeMade):
        state.volunteers.add(event.volunteer_id)


def decide(state: IntakeState, posting: Envelope[Message]) -> list[Envelope[Message]]:
    """Decide one posting; a posting already decided (a redelivery) yields nothing."""
    if posting.event_id in state.decided:
        return []
    state.decided.add(posting.event_id)
    verdict = _verdict(state, posting)
    stream = stream_of(posting.payload)
    event = derived(
        posting, verdict, label="decided", stream_id=stream, stream_seq=state.next_seq(stream)
    )
    evolve(state, verdict)
    return [event]
