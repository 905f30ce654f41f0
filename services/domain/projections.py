"""What each event changes in the read models and the money journal, as plain data.

`project` is pure, so the auditor's replay can rebuild every read model from the log and
compare; the ledger only turns these changes into SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    DonationRefunded,
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
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    PostingRefused,
    SupplyKind,
    VolunteerRegistered,
)
from services.domain.needs import need_quantity


@dataclass(frozen=True)
class JournalLine:
    """One side of a balanced money entry. Lines of one event sum to zero per currency."""

    account: str
    amount_minor: int
    currency: str


@dataclass(frozen=True)
class Row:
    """A row to insert into a read-model table (ignored if its key is already there)."""

    table: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Update:
    """Set columns of the read-model row whose `key` column equals `key_value`."""

    table: str
    key: str
    key_value: uuid.UUID
    values: dict[str, Any]


@dataclass(frozen=True)
class NeedFilled:
    """Add `amount` (negative to give back) to a need's matched quantity; status follows."""

    need_id: uuid.UUID
    amount: int


@dataclass(frozen=True)
class NeedCompleted:
    """Add `amount` to a need's delivered quantity; a need delivered in full is fulfilled."""

    need_id: uuid.UUID
    amount: int


@dataclass(frozen=True)
class MatchEnded:
    """A match stopped holding its supply (declined, withdrawn, no-show): set its status, give
    its quantity back to the need and, for a fund, move the reservation back to available.
    The applier reads the match's fund and amount from its row (written when proposed)."""

    match_id: uuid.UUID
    status: str


@dataclass(frozen=True)
class MatchDelivered:
    """A match was completed: for a fund, the reservation becomes disbursed; the need's
    delivered quantity grows by the match's quantity."""

    match_id: uuid.UUID
    minutes_served: int | None


Change = JournalLine | Row | Update | NeedFilled | NeedCompleted | MatchEnded | MatchDelivered


def fund_account(fund_id: uuid.UUID, bucket: str) -> str:
    """Account name of a fund's `available` or `reserved` money."""
    return f"fund:{fund_id}:{bucket}"


def income_account(fund_id: uuid.UUID) -> str:
    """Where donations into a fund come from (credit side): the fund's donors, together."""
    return f"donors:{fund_id}"


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def project(event: Envelope[Message]) -> list[Change]:
    """The read-model rows and journal lines one event adds."""
    p = event.payload
    for handles, projector in _PROJECTORS:
        if isinstance(p, handles):
            return projector(event)
    return []


def _need_posted(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, NeedPosted)
    wanted, unit = need_quantity(p.need)
    return [
        Row(
            "rm_needs",
            {
                "need_id": p.need_id,
                "org_id": event.actor.org_id,
                "title": p.need.title,
                "kind": p.need.kind.value,
                "category": p.need.category.value,
                "district": p.need.place.district,
                "urgency": p.need.urgency.value,
                "status": "open",
                "wanted": wanted,
                "filled": 0,
                "unit": unit,
                "deadline": p.need.deadline,
                "spec": _dump(p.need),
                "posted_event": event.event_id,
            },
        )
    ]


def _need_amended(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, NeedAmended)
    wanted, unit = need_quantity(p.need)
    return [
        Update(
            "rm_needs",
            "need_id",
            p.need_id,
            {
                "title": p.need.title,
                "urgency": p.need.urgency.value,
                "wanted": wanted,
                "unit": unit,
                "deadline": p.need.deadline,
                "spec": _dump(p.need),
            },
        ),
        NeedFilled(p.need_id, 0),
    ]


def _need_cancelled(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, NeedCancelled)
    return [Update("rm_needs", "need_id", p.need_id, {"status": "cancelled"})]


def _fund_opened(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, FundOpened)
    return [
        Row(
            "rm_funds",
            {
                "fund_id": p.fund_id,
                "org_id": event.actor.org_id,
                "name": p.fund.name,
                "currency": p.fund.currency,
                "spec": _dump(p.fund),
                "opened_event": event.event_id,
            },
        )
    ]


def _donation(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, DonationReceived)
    a = p.donation.amount
    return [
        JournalLine(income_account(p.fund_id), -a.amount_minor, a.currency),
        JournalLine(fund_account(p.fund_id, "available"), a.amount_minor, a.currency),
    ]


def _refund(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, DonationRefunded)
    a = p.amount
    return [
        JournalLine(fund_account(p.fund_id, "available"), -a.amount_minor, a.currency),
        JournalLine(income_account(p.fund_id), a.amount_minor, a.currency),
    ]


def _volunteer(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, VolunteerRegistered)
    return [
        Row(
            "rm_pledges",
            {
                "volunteer_id": p.volunteer_id,
                "org_id": event.actor.org_id,
                "pseudonym": p.pseudonym,
                "district": p.home.district,
                "spec": None,
                "status": "registered",
                "pledged_event": event.event_id,
            },
        )
    ]


def _pledge(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, PledgeMade | PledgeAmended)
    return [
        Update(
            "rm_pledges",
            "volunteer_id",
            p.volunteer_id,
            {
                "pseudonym": p.pledge.pseudonym,
                "district": p.pledge.home.district,
                "spec": _dump(p.pledge),
                "status": "active",
            },
        )
    ]


def _pledge_withdrawn(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, PledgeWithdrawn)
    return [Update("rm_pledges", "volunteer_id", p.volunteer_id, {"status": "withdrawn"})]


def _refused(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, PostingRefused)
    return [
        Row(
            "rm_refusals",
            {
                "posting_id": p.posting_id,
                "reason": p.reason,
                "field": p.problems[0].field,
                "event_id": event.event_id,
            },
        )
    ]


def _match_proposed(event: Envelope[Message]) -> list[Change]:
    assert isinstance(event.payload, MatchProposed)
    return _match_changes(event.event_id, event.payload)


def _match_accepted(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, MatchAccepted)
    return [Update("rm_matches", "match_id", p.match_id, {"status": "accepted"})]


def _match_ended(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, MatchDeclined | MatchWithdrawn | NoShowRecorded | MatchExpired)
    status = {
        MatchDeclined: "declined",
        MatchWithdrawn: "withdrawn",
        NoShowRecorded: "no_show",
        MatchExpired: "expired",
    }[type(p)]
    return [MatchEnded(p.match_id, status)]


def _match_completed(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, MatchCompleted)
    return [MatchDelivered(p.match_id, p.minutes_served)]


_PROJECTORS: tuple[tuple[Any, Callable[[Envelope[Message]], list[Change]]], ...] = (
    (NeedPosted, _need_posted),
    (NeedAmended, _need_amended),
    (NeedCancelled, _need_cancelled),
    (FundOpened, _fund_opened),
    (DonationReceived, _donation),
    (DonationRefunded, _refund),
    (VolunteerRegistered, _volunteer),
    (PledgeMade | PledgeAmended, _pledge),
    (PledgeWithdrawn, _pledge_withdrawn),
    (PostingRefused, _refused),
    (MatchProposed, _match_proposed),
    (MatchAccepted, _match_accepted),
    (MatchDeclined | MatchWithdrawn | NoShowRecorded | MatchExpired, _match_ended),
    (MatchCompleted, _match_completed),
)


def _match_changes(event_id: uuid.UUID, p: MatchProposed) -> list[Change]:
    row = Row(
        "rm_matches",
        {
            "match_id": p.match_id,
            "need_id": p.need_id,
            "supply": p.supply.value,
            "volunteer_id": p.volunteer_id,
            "fund_id": p.fund_id,
            "amount_minor": p.amount.amount_minor if p.amount else None,
            "currency": p.amount.currency if p.amount else None,
            "minutes": p.minutes,
            "status": "proposed",
            "spec": _dump(p),
            "proposed_event": event_id,
        },
    )
    if p.supply is SupplyKind.VOLUNTEER:
        return [row, NeedFilled(p.need_id, 1)]
    assert p.fund_id is not None and p.amount is not None
    a = p.amount
    return [
        row,
        JournalLine(fund_account(p.fund_id, "available"), -a.amount_minor, a.currency),
        JournalLine(fund_account(p.fund_id, "reserved"), a.amount_minor, a.currency),
        NeedFilled(p.need_id, a.amount_minor),
    ]
