"""The exchange's books rebuilt in memory from archived events, for the audit reports: no I/O.

The books *are* the ledger's fold (`services.domain.projection_fold.ProjectionFold`): each
event's `projected` changes go through it, so needs' filled / completed / status, matches'
status, pledges, funds and every journal balance mean here exactly what they mean in the
ledger's read models and in the auditor's replay. There is one reading of `project()`'s changes;
nothing in this module decides a status or a balance. Before this, the books kept a third
reading of their own next to the ledger's and the replay's, which could drift from them.

What the reports need and the read models do not hold is only *noted* beside the fold, from
the events it applied: the order of the events (so "first in, first out" and "confirmed in
the order" can be said), which event proposed and which settled each match (when, by whom),
donations and their refunds, organisation names and corrections. An event the ledger sets
aside (`projected`, `try_apply`) changes nothing here and is not noted either: it is counted,
and kept with its reason in the fold's `set_aside`.

`NeedBook`, `MatchBook`, `FundBook` and `VolunteerBook` are read-only views of the fold's rows,
built when asked for. A fold over the events recorded up to a moment gives the books as they
were then.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    DonationRefunded,
    EventCorrected,
    Message,
    OrganisationRegistered,
)
from schemas.sealed import Sealed
from services.domain.projection_fold import ProjectionFold, match_terms, projected
from services.domain.projections import (
    Change,
    JournalLine,
    MatchDelivered,
    MatchEnded,
    MatchTerms,
    Row,
    fund_account,
    pledged_account,
    volunteer_account,
)


@dataclass(frozen=True)
class NeedBook:
    """A need as the read model holds it (rm_needs), plus the people it serves."""

    need_id: uuid.UUID
    org_id: str
    title: str
    kind: str
    category: str
    district: str
    unit: str
    wanted: int
    people_served: int
    filled: int
    completed: int
    status: str


@dataclass(frozen=True)
class Settlement:
    """The event that ended or completed a match: its place in the fold, id, time and actor."""

    index: int
    event_id: uuid.UUID
    at: datetime
    by: str


@dataclass(frozen=True)
class MatchBook:
    """A match as the read model holds it (rm_matches), and when it was proposed and settled."""

    match_id: uuid.UUID
    need_id: uuid.UUID
    terms: MatchTerms
    proposed: int
    """Index (in the fold) of the proposal event: reservations are ordered by it."""
    status: str
    minutes_served: int | None = None
    settled: int | None = None
    """Index of the event that ended or completed it."""
    settled_event: uuid.UUID | None = None
    settled_at: datetime | None = None
    settled_by: str | None = None
    """The actor (organisation id) of the completing event: who confirmed delivery."""


@dataclass
class DonationBook:
    """A donation into a fund and what was refunded of it (the journal knows only sums).

    Mutable: the report reader replaces a sealed label or note by its text (services.audit
    .reading); nothing is compared with these."""

    donation_id: uuid.UUID
    fund_id: uuid.UUID
    donor: str
    amount_minor: int
    currency: str
    received: int
    received_at: datetime
    event_id: uuid.UUID
    recorded_by: str
    refunded_minor: int = 0
    note: str = ""
    donor_sealed: bool = False
    """The label was sealed (ReceiveDonation v2 on): not a registered organisation's name when
    posted, so never named in the disclosure report, whatever it reads as."""


@dataclass(frozen=True)
class FundBook:
    """A fund as opened (rm_funds)."""

    fund_id: uuid.UUID
    org_id: str
    name: str
    currency: str
    spec: dict[str, Any]
    urgent_reserve_percent: int = 0
    """The share of its net donations the foundation holds back for urgent needs."""


@dataclass(frozen=True)
class VolunteerBook:
    """A volunteer, known only by pseudonym and home district (rm_pledges)."""

    volunteer_id: uuid.UUID
    pseudonym: str
    district: str
    status: str


T = TypeVar("T")


class RowsById(Mapping[uuid.UUID, T]):
    """A read model's rows by their id, each read as a view when asked for: the fold's row
    itself, not a copy taken earlier, so a view never disagrees with the fold."""

    def __init__(
        self, rows: dict[tuple[Any, ...], dict[str, Any]], view: Callable[[dict[str, Any]], T]
    ) -> None:
        self._rows, self._view = rows, view

    def __getitem__(self, key: uuid.UUID) -> T:
        return self._view(self._rows[(key,)])

    def __contains__(self, key: object) -> bool:
        return (key,) in self._rows

    def __iter__(self) -> Iterator[uuid.UUID]:
        return (key[0] for key in self._rows)

    def __len__(self) -> int:
        return len(self._rows)


@dataclass
class Books:
    """The ledger's fold over events in archive order, and what the reports note beside it."""

    projection: ProjectionFold = field(default_factory=lambda: ProjectionFold(watch=frozenset()))
    """The read models and journal (no writers noted: the reports never name them)."""
    donations: dict[uuid.UUID, DonationBook] = field(default_factory=dict)
    organisations: dict[str, str] = field(default_factory=dict)
    """organisation id -> name, from OrganisationRegistered events."""
    corrections: list[Envelope[Message]] = field(default_factory=list)
    pseudonyms: dict[uuid.UUID, str] = field(default_factory=dict)
    """volunteer id -> pseudonym as the report reader opened it (the row keeps it sealed)."""
    proposed: dict[uuid.UUID, int] = field(default_factory=dict)
    """match id -> index of the event whose row the fold inserted."""
    settlements: dict[uuid.UUID, Settlement] = field(default_factory=dict)
    """match id -> the last event that ended or completed it."""
    events: int = 0
    """Events folded (set-aside ones included): the next event's index."""

    @property
    def needs(self) -> Mapping[uuid.UUID, NeedBook]:
        """Every need in the fold (rm_needs)."""
        return RowsById(self.projection.tables["rm_needs"], _need)

    @property
    def matches(self) -> Mapping[uuid.UUID, MatchBook]:
        """Every match in the fold (rm_matches), with its proposal and settlement."""
        return RowsById(self.projection.tables["rm_matches"], self._match)

    @property
    def funds(self) -> Mapping[uuid.UUID, FundBook]:
        """Every fund in the fold (rm_funds)."""
        return RowsById(self.projection.tables["rm_funds"], _fund)

    @property
    def volunteers(self) -> Mapping[uuid.UUID, VolunteerBook]:
        """Every registered volunteer in the fold (rm_pledges), pseudonyms opened if given."""
        return RowsById(self.projection.tables["rm_pledges"], self._volunteer)

    @property
    def lines(self) -> dict[uuid.UUID, list[JournalLine]]:
        """Each event's journal lines, in line order (journal_lines)."""
        out: dict[uuid.UUID, list[JournalLine]] = {}
        for r in self.projection.tables["journal_lines"].values():
            line = JournalLine(r["account"], r["amount_minor"], r["currency"])
            out.setdefault(r["event_id"], []).append(line)
        return out

    @property
    def accounts(self) -> dict[tuple[str, str], int]:
        """(account, unit) -> balance, as the ledger's journal sums them. An account is kept
        in one unit (a fund's in its currency, a volunteer's in minutes): the fold's balances
        are by account, and a comparison with the ledger's sums by both would show a mix."""
        units = {
            r["account"]: r["currency"] for r in self.projection.tables["journal_lines"].values()
        }
        return {(a, units[a]): b for a, b in self.projection.balances.items()}

    def balance(self, account: str) -> int:
        """The journal balance of `account` (the fold's, as the ledger reads it back)."""
        return self.projection.balances.get(account, 0)

    def fund_balances(self, fund_id: uuid.UUID) -> dict[str, int]:
        """available / reserved / disbursed of a fund, in its currency's minor units."""
        return {
            b: self.balance(fund_account(fund_id, b))
            for b in ("available", "reserved", "disbursed")
        }

    def volunteer_minutes(self, volunteer_id: uuid.UUID) -> dict[str, int]:
        """offered / reserved / served minutes of a volunteer, and what the pledge offers."""
        out = {
            b: self.balance(volunteer_account(volunteer_id, b))
            for b in ("offered", "reserved", "served")
        }
        out["pledged"] = -self.balance(pledged_account(volunteer_id))
        return out

    def apply(self, env: Envelope[Message]) -> None:
        """Apply one event seen for the first time through the fold, as the ledger does, and
        note what the reports need of it; an event the ledger sets aside is only counted."""
        n = self.events
        self.events += 1
        changes, reason = projected(env)
        if reason is not None:
            self.projection.set_aside[env.event_id] = reason
        elif self.projection.try_apply(env.event_id, changes) is None:
            self._note(env, n, changes)

    def _note(self, env: Envelope[Message], n: int, changes: list[Change]) -> None:
        p = env.payload
        if isinstance(p, OrganisationRegistered):
            self.organisations[str(p.org_id)] = p.name
        elif isinstance(p, EventCorrected):
            self.corrections.append(env)
        elif isinstance(p, DonationReceived):
            self.donations[p.donation_id] = _donation(env, p, n)
        elif isinstance(p, DonationRefunded) and p.donation_id in self.donations:
            self.donations[p.donation_id].refunded_minor += p.amount.amount_minor
        matches = self.projection.tables["rm_matches"]
        for change in changes:
            if isinstance(change, Row) and change.table == "rm_matches":
                self.proposed.setdefault(change.values["match_id"], n)
            elif isinstance(change, MatchEnded | MatchDelivered) and (change.match_id,) in matches:
                self.settlements[change.match_id] = Settlement(
                    n, env.event_id, env.recorded_at, env.actor.org_id
                )

    def _match(self, row: dict[str, Any]) -> MatchBook:
        s = self.settlements.get(row["match_id"])
        return MatchBook(
            row["match_id"],
            row["need_id"],
            match_terms(row),
            self.proposed[row["match_id"]],
            row["status"],
            row.get("minutes_served"),
            s.index if s else None,
            s.event_id if s else None,
            s.at if s else None,
            s.by if s else None,
        )

    def _volunteer(self, row: dict[str, Any]) -> VolunteerBook:
        vid = row["volunteer_id"]
        pseudonym = self.pseudonyms.get(vid, row["pseudonym"])
        return VolunteerBook(vid, pseudonym, row["district"], row["status"])


def _need(row: dict[str, Any]) -> NeedBook:
    return NeedBook(
        row["need_id"],
        str(row["org_id"]),
        row["title"],
        row["kind"],
        row["category"],
        row["district"],
        row["unit"],
        row["wanted"],
        int(row["spec"].get("people_served", 0)),
        row["filled"],
        row["completed"],
        row["status"],
    )


def _fund(row: dict[str, Any]) -> FundBook:
    return FundBook(
        row["fund_id"],
        str(row["org_id"]),
        row["name"],
        row["currency"],
        row["spec"],
        int(row.get("urgent_reserve_percent") or 0),
    )


def _donation(env: Envelope[Message], p: DonationReceived, n: int) -> DonationBook:
    return DonationBook(
        p.donation_id,
        p.fund_id,
        _text(p.donation.donor),
        p.donation.amount.amount_minor,
        p.donation.amount.currency,
        n,
        env.recorded_at,
        env.event_id,
        env.actor.org_id,
        note=_text(p.donation.note),
        donor_sealed=isinstance(p.donation.donor, Sealed),
    )


def fold(events: Iterable[Envelope[Message]], until: datetime | None = None) -> Books:
    """The books after `events` (archive order, each once), keeping only those recorded at or
    before `until` when it is given."""
    books = Books()
    for env in events:
        if until is None or env.recorded_at <= until:
            books.apply(env)
    return books


def _text(value: Sealed | str) -> str:
    """Plain text as it is; a sealed value as its compact JSON, opened (or shown as forgotten)
    only by the report reader (`services.audit.reports.reading`), which holds the keys."""
    return value.model_dump_json() if isinstance(value, Sealed) else value
