"""Intake decisions: accept or refuse a posting the gateway accepted, given what came before.

`decide` is pure: the same postings in the same order always give the same events, ids
included. The state is everything earlier decisions established about the keys involved.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from pydantic import ValidationError

from schemas.codec import field_errors
from schemas.envelope import Envelope
from schemas.messages import (
    AmendNeed,
    AmendPledge,
    CancelNeed,
    DonationReceived,
    DonationRefunded,
    FundOpened,
    FundReserveSet,
    MakePledge,
    Message,
    NeedAmended,
    NeedCancelled,
    NeedPosted,
    OpenFund,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    PostingRefused,
    PostNeed,
    Problem,
    ReceiveDonation,
    RefundDonation,
    RegisterVolunteer,
    SetFundReserve,
    VolunteerRegistered,
    WithdrawPledge,
)
from schemas.specs import NeedSpec
from services.domain.needs import occurrences
from services.domain.outputs import derived


@dataclass
class Donation:
    """A donation as the donations service knows it: into which fund, how much, refunded."""

    fund_id: uuid.UUID
    amount_minor: int
    currency: str
    refunded_minor: int = 0


@dataclass
class IntakeState:
    """What an intake service has decided so far (one service sees only its own kind)."""

    decided: set[uuid.UUID] = field(default_factory=set)
    stream_seq: dict[str, int] = field(default_factory=dict)
    needs: dict[uuid.UUID, NeedSpec] = field(default_factory=dict)
    cancelled: set[uuid.UUID] = field(default_factory=set)
    fund_currency: dict[uuid.UUID, str] = field(default_factory=dict)
    fund_owner: dict[uuid.UUID, str] = field(default_factory=dict)
    """fund id -> the organisation that opened it (the only one that may set its reserve)."""
    donations: dict[uuid.UUID, Donation] = field(default_factory=dict)
    volunteers: dict[uuid.UUID, str] = field(default_factory=dict)
    """volunteer id -> "registered", "pledged" or "withdrawn"."""

    def next_seq(self, stream_id: str) -> int:
        """The next sequence number in a stream (1-based); advances the stream."""
        seq = self.stream_seq.get(stream_id, 0) + 1
        self.stream_seq[stream_id] = seq
        return seq


def stream_of(payload: Message) -> str:
    """The stream a command or event belongs to: its match, fund, need, volunteer or
    organisation (in that order: a match names its need, a reservation its fund)."""
    for attr, stream in (
        ("match_id", "match"),
        ("fund_id", "fund"),
        ("need_id", "need"),
        ("volunteer_id", "volunteer"),
        ("org_id", "organisation"),
    ):
        value = getattr(payload, attr, None)
        if value is not None:
            return f"{stream}:{value}"
    raise TypeError(f"no stream for {payload.TYPE}")


def _refusal(posting: Envelope[Message], reason: str, fld: str | None) -> PostingRefused:
    return PostingRefused(
        posting_id=posting.event_id,
        posting_type=posting.event_type,
        problems=[Problem(field=fld, reason=reason)],
    )


def _need_verdict(state: IntakeState, posting: Envelope[Message], cmd: Message) -> Message:
    now = posting.recorded_at
    if isinstance(cmd, PostNeed):
        if cmd.need_id in state.needs:
            return _refusal(posting, "this need was already posted", "need_id")
        if cmd.need.deadline <= now:
            return _refusal(posting, "the deadline has already passed", "need.deadline")
        return NeedPosted(need_id=cmd.need_id, need=cmd.need)
    assert isinstance(cmd, AmendNeed | CancelNeed)
    spec = state.needs.get(cmd.need_id)
    if spec is None:
        return _refusal(posting, "no need has this id", "need_id")
    if cmd.need_id in state.cancelled:
        return _refusal(posting, "the need is cancelled; only an open need can change", "need_id")
    if spec.deadline <= now:
        return _refusal(posting, "the need's deadline has passed", "need_id")
    if isinstance(cmd, CancelNeed):
        return NeedCancelled(need_id=cmd.need_id, reason=cmd.reason)
    changes = cmd.amendment.model_dump(exclude_none=True)
    try:
        amended = NeedSpec.model_validate(spec.model_dump() | changes)
    except ValidationError as exc:
        return PostingRefused(
            posting_id=posting.event_id,
            posting_type=posting.event_type,
            problems=[
                Problem(field=f"amendment.{e['field']}".removesuffix(".(root)"), reason=e["reason"])
                for e in field_errors(exc)
            ],
        )
    if amended.deadline <= now:
        return _refusal(posting, "the new deadline has already passed", "amendment.deadline")
    return NeedAmended(need_id=cmd.need_id, need=amended, changed=sorted(changes))


def _fund_verdict(state: IntakeState, posting: Envelope[Message], cmd: Message) -> Message:
    if isinstance(cmd, OpenFund):
        if cmd.fund_id in state.fund_currency:
            return _refusal(posting, "this fund is already open", "fund_id")
        return FundOpened(
            fund_id=cmd.fund_id, fund=cmd.fund, urgent_reserve_percent=cmd.urgent_reserve_percent
        )
    assert isinstance(cmd, ReceiveDonation | RefundDonation | SetFundReserve)
    currency = state.fund_currency.get(cmd.fund_id)
    if currency is None:
        return _refusal(posting, "no open fund has this id", "fund_id")
    if isinstance(cmd, SetFundReserve):
        if state.fund_owner.get(cmd.fund_id) != posting.actor.org_id:
            return _refusal(
                posting,
                "only the foundation that opened the fund may change its reserve",
                "fund_id",
            )
        return FundReserveSet(
            fund_id=cmd.fund_id, urgent_reserve_percent=cmd.urgent_reserve_percent
        )
    if isinstance(cmd, ReceiveDonation):
        if cmd.donation_id in state.donations:
            return _refusal(posting, "this donation was already recorded", "donation_id")
        if cmd.donation.amount.currency != currency:
            return _refusal(posting, f"the fund holds {currency} only", "donation.amount.currency")
        return DonationReceived(
            fund_id=cmd.fund_id, donation_id=cmd.donation_id, donation=cmd.donation
        )
    gift = state.donations.get(cmd.donation_id)
    if gift is None or gift.fund_id != cmd.fund_id:
        return _refusal(
            posting, "no donation with this id was received into this fund", "donation_id"
        )
    if cmd.amount.currency != gift.currency:
        return _refusal(posting, f"the donation was in {gift.currency}", "amount.currency")
    left = gift.amount_minor - gift.refunded_minor
    if cmd.amount.amount_minor > left:
        return _refusal(
            posting,
            f"refund exceeds what is left of the donation ({left} minor units)",
            "amount.amount_minor",
        )
    return DonationRefunded(
        fund_id=cmd.fund_id,
        donation_id=cmd.donation_id,
        refund_id=cmd.refund_id,
        amount=cmd.amount,
        reason=cmd.reason,
    )


def _volunteer_verdict(state: IntakeState, posting: Envelope[Message], cmd: Message) -> Message:
    assert isinstance(cmd, RegisterVolunteer | MakePledge | AmendPledge | WithdrawPledge)
    status = state.volunteers.get(cmd.volunteer_id)
    if isinstance(cmd, RegisterVolunteer):
        if status is not None:
            return _refusal(posting, "this volunteer is already registered", "volunteer_id")
        return VolunteerRegistered(
            volunteer_id=cmd.volunteer_id, pseudonym=cmd.pseudonym, home=cmd.home
        )
    if status is None:
        return _refusal(posting, "no volunteer is registered with this id", "volunteer_id")
    if isinstance(cmd, MakePledge):
        if status == "pledged":
            return _refusal(
                posting, "this volunteer already has a pledge; amend it", "volunteer_id"
            )
        return PledgeMade(volunteer_id=cmd.volunteer_id, pledge=cmd.pledge)
    if status != "pledged":
        return _refusal(posting, "this volunteer has no current pledge", "volunteer_id")
    if isinstance(cmd, AmendPledge):
        return PledgeAmended(volunteer_id=cmd.volunteer_id, pledge=cmd.pledge)
    return PledgeWithdrawn(volunteer_id=cmd.volunteer_id, reason=cmd.reason)


def _verdict(state: IntakeState, posting: Envelope[Message]) -> Message:
    """The one event this posting produces: the accepted fact, or a refusal with its reason."""
    cmd = posting.payload
    if isinstance(cmd, PostNeed | AmendNeed | CancelNeed):
        return _need_verdict(state, posting, cmd)
    if isinstance(cmd, OpenFund | ReceiveDonation | RefundDonation | SetFundReserve):
        return _fund_verdict(state, posting, cmd)
    if isinstance(cmd, RegisterVolunteer | MakePledge | AmendPledge | WithdrawPledge):
        return _volunteer_verdict(state, posting, cmd)
    return _refusal(posting, f"{posting.event_type} is not decided by this version", "event_type")


def evolve(state: IntakeState, event: Message) -> None:
    """Fold one decided event into the state."""
    if isinstance(event, NeedPosted | NeedAmended):
        state.needs[event.need_id] = event.need
    elif isinstance(event, NeedCancelled):
        state.cancelled.add(event.need_id)
    elif isinstance(event, FundOpened):
        state.fund_currency[event.fund_id] = event.fund.currency
    elif isinstance(event, DonationReceived):
        a = event.donation.amount
        state.donations[event.donation_id] = Donation(event.fund_id, a.amount_minor, a.currency)
    elif isinstance(event, DonationRefunded):
        state.donations[event.donation_id].refunded_minor += event.amount.amount_minor
    elif isinstance(event, VolunteerRegistered):
        state.volunteers[event.volunteer_id] = "registered"
    elif isinstance(event, PledgeMade | PledgeAmended):
        state.volunteers[event.volunteer_id] = "pledged"
    elif isinstance(event, PledgeWithdrawn):
        state.volunteers[event.volunteer_id] = "withdrawn"


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
    if isinstance(verdict, FundOpened):
        state.fund_owner[verdict.fund_id] = posting.actor.org_id
    cmd = posting.payload
    if not (isinstance(verdict, NeedPosted) and isinstance(cmd, PostNeed) and cmd.repeat):
        return [event]
    out = [event]
    for k, (need_id, spec) in enumerate(occurrences(cmd.need_id, cmd.need, cmd.repeat.weeks)):
        if k == 0:
            continue
        later = NeedPosted(need_id=need_id, need=spec)
        stream = f"need:{need_id}"
        out.append(
            derived(
                posting,
                later,
                label=f"decided/occurrence/{k}",
                stream_id=stream,
                stream_seq=state.next_seq(stream),
            )
        )
        evolve(state, later)
    return out
