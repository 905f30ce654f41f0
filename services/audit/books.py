"""The exchange's books rebuilt in memory from archived events: no I/O.

`Books.apply` interprets the same `project()` changes the ledger turns into SQL
(services/ledger/archive.py), with the same journal-line helpers (`match_lines`,
`pledge_lines`, `withdrawal_lines`), so a fold over the archive reaches the ledger's balances.
The audit reports (as-of, trail, disclosure) read these books; a fold over the events recorded
up to a moment gives the books as they were then.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    DonationRefunded,
    EventCorrected,
    Message,
    OrganisationRegistered,
)
from schemas.sealed import Sealed
from services.domain.projections import (
    MINUTES,
    JournalLine,
    MatchDelivered,
    MatchEnded,
    MatchTerms,
    NeedCompleted,
    NeedFilled,
    PledgeEnded,
    PledgeSet,
    Row,
    Update,
    fund_account,
    match_lines,
    pledge_lines,
    pledged_account,
    project,
    volunteer_account,
    withdrawal_lines,
)


@dataclass
class NeedBook:
    """A need as the read model holds it (rm_needs), plus what the reports need."""

    need_id: uuid.UUID
    org_id: str
    title: str
    kind: str
    category: str
    district: str
    unit: str
    wanted: int
    people_served: int
    filled: int = 0
    completed: int = 0
    status: str = "open"


@dataclass
class MatchBook:
    """A match: its terms, status and the order in which it was proposed and settled."""

    match_id: uuid.UUID
    need_id: uuid.UUID
    terms: MatchTerms
    proposed: int
    """Index (in the fold) of the proposal event: reservations are ordered by it."""
    status: str = "proposed"
    minutes_served: int | None = None
    settled: int | None = None
    """Index of the event that ended or completed it."""
    settled_event: uuid.UUID | None = None
    settled_at: datetime | None = None
    settled_by: str | None = None
    """The actor (organisation id) of the completing event: who confirmed delivery."""


@dataclass
class DonationBook:
    """A donation into a fund and what was refunded of it."""

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


@dataclass
class FundBook:
    """A fund as opened."""

    fund_id: uuid.UUID
    org_id: str
    name: str
    currency: str
    spec: dict[str, Any]


@dataclass
class VolunteerBook:
    """A volunteer, known only by pseudonym and home district."""

    volunteer_id: uuid.UUID
    pseudonym: str
    district: str
    status: str = "registered"


@dataclass
class Books:
    """Everything the audit reports read, folded from events in archive order."""

    accounts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    lines: dict[uuid.UUID, list[JournalLine]] = field(default_factory=dict)
    needs: dict[uuid.UUID, NeedBook] = field(default_factory=dict)
    matches: dict[uuid.UUID, MatchBook] = field(default_factory=dict)
    funds: dict[uuid.UUID, FundBook] = field(default_factory=dict)
    donations: dict[uuid.UUID, DonationBook] = field(default_factory=dict)
    volunteers: dict[uuid.UUID, VolunteerBook] = field(default_factory=dict)
    organisations: dict[str, str] = field(default_factory=dict)
    """organisation id -> name, from OrganisationRegistered events."""
    corrections: list[Envelope[Message]] = field(default_factory=list)
    events: int = 0

    def balance(self, account: str, unit: str) -> int:
        """The sum of every line posted to `account` in `unit`."""
        return self.accounts.get((account, unit), 0)

    def fund_balances(self, fund_id: uuid.UUID) -> dict[str, int]:
        """available / reserved / disbursed of a fund, in its currency's minor units."""
        cur = self.funds[fund_id].currency if fund_id in self.funds else "CNY"
        return {
            b: self.balance(fund_account(fund_id, b), cur)
            for b in ("available", "reserved", "disbursed")
        }

    def volunteer_minutes(self, volunteer_id: uuid.UUID) -> dict[str, int]:
        """offered / reserved / served minutes of a volunteer, and what the pledge offers."""
        out = {
            b: self.balance(volunteer_account(volunteer_id, b), MINUTES)
            for b in ("offered", "reserved", "served")
        }
        out["pledged"] = -self.balance(pledged_account(volunteer_id), MINUTES)
        return out

    def post(self, event_id: uuid.UUID, line: JournalLine) -> None:
        """Add one journal line (as the ledger's Journal.post does)."""
        self.accounts[(line.account, line.currency)] += line.amount_minor
        self.lines.setdefault(event_id, []).append(line)

    def apply(self, env: Envelope[Message]) -> None:
        """Apply one event seen for the first time, exactly as the ledger projects it."""
        n = self.events
        self.events += 1
        p = env.payload
        if isinstance(p, OrganisationRegistered):
            self.organisations[str(p.org_id)] = p.name
        elif isinstance(p, EventCorrected):
            self.corrections.append(env)
        elif isinstance(p, DonationReceived):
            self.donations[p.donation_id] = DonationBook(
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
        elif isinstance(p, DonationRefunded) and p.donation_id in self.donations:
            self.donations[p.donation_id].refunded_minor += p.amount.amount_minor
        for change in project(env):
            self._change(env, n, change)

    def _change(self, env: Envelope[Message], n: int, change: Any) -> None:
        if isinstance(change, JournalLine):
            self.post(env.event_id, change)
        elif isinstance(change, Row):
            self._row(change, n)
        elif isinstance(change, Update):
            self._update(change)
        elif isinstance(change, NeedFilled):
            self._need_delta(change.need_id, filled=change.amount)
        elif isinstance(change, NeedCompleted):
            self._need_delta(change.need_id, completed=change.amount)
        elif isinstance(change, MatchEnded | MatchDelivered):
            self._match(env, n, change)
        elif isinstance(change, PledgeSet | PledgeEnded):
            v = change.volunteer_id
            pledged = -self.balance(pledged_account(v), MINUTES)
            if isinstance(change, PledgeSet):
                lines = pledge_lines(v, pledged, change.minutes)
            else:
                offered = self.balance(volunteer_account(v, "offered"), MINUTES)
                lines = withdrawal_lines(v, offered, pledged)
            for line in lines:
                self.post(env.event_id, line)

    def _row(self, row: Row, n: int) -> None:
        v = row.values
        if row.table == "rm_needs" and v["need_id"] not in self.needs:
            spec = v["spec"]
            self.needs[v["need_id"]] = NeedBook(
                v["need_id"],
                str(v["org_id"]),
                v["title"],
                v["kind"],
                v["category"],
                v["district"],
                v["unit"],
                v["wanted"],
                int(spec.get("people_served", 0)),
            )
        elif row.table == "rm_funds" and v["fund_id"] not in self.funds:
            self.funds[v["fund_id"]] = FundBook(
                v["fund_id"], str(v["org_id"]), v["name"], v["currency"], v["spec"]
            )
        elif row.table == "rm_pledges" and v["volunteer_id"] not in self.volunteers:
            self.volunteers[v["volunteer_id"]] = VolunteerBook(
                v["volunteer_id"], v["pseudonym"], v["district"]
            )
        elif row.table == "rm_matches" and v["match_id"] not in self.matches:
            terms = MatchTerms(
                v["supply"],
                v["fund_id"],
                v["amount_minor"],
                v["currency"],
                v["volunteer_id"],
                v["minutes"],
            )
            self.matches[v["match_id"]] = MatchBook(v["match_id"], v["need_id"], terms, n)

    def _update(self, up: Update) -> None:
        if up.table == "rm_needs" and up.key_value in self.needs:
            need = self.needs[up.key_value]
            for k in ("title", "wanted", "unit", "status"):
                if k in up.values:
                    setattr(need, k, up.values[k])
            if "spec" in up.values:
                need.people_served = int(up.values["spec"].get("people_served", 0))
        elif up.table == "rm_pledges" and up.key_value in self.volunteers:
            vol = self.volunteers[up.key_value]
            vol.pseudonym = up.values.get("pseudonym", vol.pseudonym)
            vol.district = up.values.get("district", vol.district)
            vol.status = up.values.get("status", vol.status)
        elif up.table == "rm_matches" and up.key_value in self.matches:
            self.matches[up.key_value].status = up.values.get("status", "proposed")

    def _need_delta(self, need_id: uuid.UUID, filled: int = 0, completed: int = 0) -> None:
        need = self.needs.get(need_id)
        if need is None:
            return
        need.filled += filled
        need.completed += completed
        need.status = need_status(need)

    def _match(self, env: Envelope[Message], n: int, change: MatchEnded | MatchDelivered) -> None:
        m = self.matches.get(change.match_id)
        if m is None:
            return
        quantity = (m.terms.amount_minor or 0) if m.terms.supply == "fund" else 1
        if isinstance(change, MatchEnded):
            m.status = change.status
            self._need_delta(m.need_id, filled=-quantity)
        else:
            m.status = "completed"
            m.minutes_served = change.minutes_served
            self._need_delta(m.need_id, completed=quantity)
        m.settled, m.settled_event, m.settled_at = n, env.event_id, env.recorded_at
        m.settled_by = env.actor.org_id
        for line in match_lines(m.terms, change):
            self.post(env.event_id, line)


def need_status(need: NeedBook) -> str:
    """The ledger's NEED_STATUS rule (services/ledger/archive.py), in Python."""
    if need.status in ("cancelled", "fulfilled"):
        return need.status
    if need.completed >= need.wanted:
        return "fulfilled"
    if need.filled >= need.wanted:
        return "matched"
    if need.filled > 0:
        return "partially_matched"
    return "open"


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
    only by the report reader (`services.audit.reading`), which holds the keys."""
    return value.model_dump_json() if isinstance(value, Sealed) else value
