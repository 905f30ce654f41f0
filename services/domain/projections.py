"""What each event changes in the read models and the money journal, as plain data.

`project` is pure, so the auditor's replay can rebuild every read model from the log and
compare; the ledger only turns these changes into SQL.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    FundOpened,
    MatchProposed,
    Message,
    NeedPosted,
    PledgeMade,
    PostingRefused,
    SupplyKind,
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
class NeedFilled:
    """Add `amount` to a need's filled quantity and recompute its status."""

    need_id: uuid.UUID
    amount: int


Change = JournalLine | Row | NeedFilled


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
    p, org = event.payload, event.actor.org_id
    if isinstance(p, NeedPosted):
        wanted, unit = need_quantity(p.need)
        return [
            Row(
                "rm_needs",
                {
                    "need_id": p.need_id,
                    "org_id": org,
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
    if isinstance(p, FundOpened):
        return [
            Row(
                "rm_funds",
                {
                    "fund_id": p.fund_id,
                    "org_id": org,
                    "name": p.fund.name,
                    "currency": p.fund.currency,
                    "spec": _dump(p.fund),
                    "opened_event": event.event_id,
                },
            )
        ]
    if isinstance(p, DonationReceived):
        amount = p.donation.amount
        return [
            JournalLine(income_account(p.fund_id), -amount.amount_minor, amount.currency),
            JournalLine(fund_account(p.fund_id, "available"), amount.amount_minor, amount.currency),
        ]
    if isinstance(p, PledgeMade):
        return [
            Row(
                "rm_pledges",
                {
                    "volunteer_id": p.volunteer_id,
                    "org_id": org,
                    "pseudonym": p.pledge.pseudonym,
                    "district": p.pledge.home.district,
                    "spec": _dump(p.pledge),
                    "pledged_event": event.event_id,
                },
            )
        ]
    if isinstance(p, PostingRefused):
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
    if isinstance(p, MatchProposed):
        return _match_changes(event.event_id, p)
    return []


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
