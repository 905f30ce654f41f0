"""What each event changes in the read models and the journal (money and volunteer minutes),
as plain data.

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
    FundReserveSet,
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
from schemas.sealed import Sealed
from schemas.specs import PledgeSpec
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


@dataclass(frozen=True)
class PledgeSet:
    """A pledge (made or amended) now offers `minutes` in all (the length of its availability
    windows). The applier moves the difference from the pledge before it, which it reads from
    the journal, between the volunteer's `pledged` and `offered` accounts."""

    volunteer_id: uuid.UUID
    minutes: int


@dataclass(frozen=True)
class PledgeEnded:
    """A pledge was withdrawn: the minutes still offered (not booked) go back to `pledged`;
    booked shifts end only through the match lifecycle."""

    volunteer_id: uuid.UUID


Change = (
    JournalLine
    | Row
    | Update
    | NeedFilled
    | NeedCompleted
    | MatchEnded
    | MatchDelivered
    | PledgeSet
    | PledgeEnded
)

MINUTES = "MIN"
"""The journal's unit for volunteer time: hours are journalled in whole minutes, in the same
table and under the same balance rule as money (lines of one event sum to zero per unit)."""


def fund_account(fund_id: uuid.UUID, bucket: str) -> str:
    """Account name of a fund's `available` or `reserved` money."""
    return f"fund:{fund_id}:{bucket}"


def income_account(fund_id: uuid.UUID) -> str:
    """Where donations into a fund come from (credit side): the fund's donors, together."""
    return f"donors:{fund_id}"


def volunteer_account(volunteer_id: uuid.UUID, bucket: str) -> str:
    """Account name of a volunteer's `offered`, `reserved` or `served` minutes."""
    return f"volunteer:{volunteer_id}:{bucket}"


def pledged_account(volunteer_id: uuid.UUID) -> str:
    """Where a volunteer's offered minutes come from (credit side): their pledge. Its balance
    is minus the minutes the current pledge offers."""
    return f"pledged:{volunteer_id}"


def pledge_minutes(pledge: PledgeSpec) -> int:
    """Minutes a pledge offers: the total length of its availability windows (which never
    overlap), independent of the weekly limit, which caps bookings, not the offer."""
    return sum(w.minutes for w in pledge.availability)


def pledge_lines(volunteer_id: uuid.UUID, before: int, now: int) -> list[JournalLine]:
    """Lines moving a pledge from offering `before` minutes to offering `now`."""
    delta = now - before
    if delta == 0:
        return []
    return [
        JournalLine(pledged_account(volunteer_id), -delta, MINUTES),
        JournalLine(volunteer_account(volunteer_id, "offered"), delta, MINUTES),
    ]


def withdrawal_lines(volunteer_id: uuid.UUID, offered: int, pledged: int) -> list[JournalLine]:
    """Lines returning what is still offered (at most what the pledge offers) to the pledge."""
    back = max(0, min(offered, pledged))
    if back == 0:
        return []
    return [
        JournalLine(volunteer_account(volunteer_id, "offered"), -back, MINUTES),
        JournalLine(pledged_account(volunteer_id), back, MINUTES),
    ]


@dataclass(frozen=True)
class MatchTerms:
    """What a match holds, as written when it was proposed (rm_matches)."""

    supply: str
    fund_id: uuid.UUID | None
    amount_minor: int | None
    currency: str | None
    volunteer_id: uuid.UUID | None
    minutes: int | None


def match_lines(terms: MatchTerms, change: MatchEnded | MatchDelivered) -> list[JournalLine]:
    """The journal lines of a match ending or being delivered, for money and for minutes.

    Money: reserved goes back to available (ended) or to disbursed (delivered). Minutes:
    reserved goes back to offered (ended); delivered, the minutes served are `served` and any
    unserved remainder goes back to offered (more served than planned comes out of offered)."""
    if terms.supply == "fund":
        assert terms.fund_id is not None and terms.amount_minor is not None
        q, cur = terms.amount_minor, (terms.currency or "").strip()
        to = "available" if isinstance(change, MatchEnded) else "disbursed"
        return [
            JournalLine(fund_account(terms.fund_id, "reserved"), -q, cur),
            JournalLine(fund_account(terms.fund_id, to), q, cur),
        ]
    if terms.volunteer_id is None or terms.minutes is None:
        return []
    v, planned = terms.volunteer_id, terms.minutes
    lines = [JournalLine(volunteer_account(v, "reserved"), -planned, MINUTES)]
    if isinstance(change, MatchEnded):
        return [*lines, JournalLine(volunteer_account(v, "offered"), planned, MINUTES)]
    served = planned if change.minutes_served is None else change.minutes_served
    lines.append(JournalLine(volunteer_account(v, "served"), served, MINUTES))
    if planned != served:
        lines.append(JournalLine(volunteer_account(v, "offered"), planned - served, MINUTES))
    return lines


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


def _text(value: Sealed | str) -> str:
    """A text column's value: plain text as it is, a sealed value as its compact JSON (the
    same bytes as on the wire), so the read model holds only what the log holds and forgetting
    a key changes no row (docs/privacy.md)."""
    return value.model_dump_json() if isinstance(value, Sealed) else value


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
                "category": p.need.category,
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
                "urgent_reserve_percent": p.urgent_reserve_percent,
            },
        )
    ]


def _reserve_set(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, FundReserveSet)
    values = {"urgent_reserve_percent": p.urgent_reserve_percent}
    return [Update("rm_funds", "fund_id", p.fund_id, values)]


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
                "pseudonym": _text(p.pseudonym),
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
                "pseudonym": _text(p.pledge.pseudonym),
                "district": p.pledge.home.district,
                "spec": _dump(p.pledge),
                "status": "active",
            },
        ),
        PledgeSet(p.volunteer_id, pledge_minutes(p.pledge)),
    ]


def _pledge_withdrawn(event: Envelope[Message]) -> list[Change]:
    p = event.payload
    assert isinstance(p, PledgeWithdrawn)
    return [
        Update("rm_pledges", "volunteer_id", p.volunteer_id, {"status": "withdrawn"}),
        PledgeEnded(p.volunteer_id),
    ]


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
    (FundReserveSet, _reserve_set),
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
        assert p.volunteer_id is not None and p.minutes is not None
        v = p.volunteer_id
        return [
            row,
            JournalLine(volunteer_account(v, "offered"), -p.minutes, MINUTES),
            JournalLine(volunteer_account(v, "reserved"), p.minutes, MINUTES),
            NeedFilled(p.need_id, 1),
        ]
    assert p.fund_id is not None and p.amount is not None
    a = p.amount
    return [
        row,
        JournalLine(fund_account(p.fund_id, "available"), -a.amount_minor, a.currency),
        JournalLine(fund_account(p.fund_id, "reserved"), a.amount_minor, a.currency),
        NeedFilled(p.need_id, a.amount_minor),
    ]
