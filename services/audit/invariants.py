"""The exchange's promises checked over the whole log: no fund over-spent, no need over-filled,
no volunteer double-booked or over their weekly limit, no money moved against a fund's
earmarks. Pure: it is fed decoded events in log order and names the events of each violation.

The order is the archive's (archive_seq), each event counted at its first appearance: the
order in which the ledger wrote the books. It is a meaningful order for every check:

- the ledger archives a matcher decision only after the input that caused it
  (`hold_back_decisions`), so a reservation is never counted before the donation or the
  need it was decided on;
- a fund's money events (donations, refunds) reach the matcher only through its owner's
  partition of matcher.inputs, and every proposal on that fund is decided either there or
  after a grant the owner decided there; the archive keeps each partition's order, so the
  money a proposal relied on is archived before it.

What the archive order cannot tell is which of two independent events came first on two
different partitions; no check here depends on that. A refund that leaves a fund below what is
reserved is reported at the refund (the refund's intake decision is then the one at fault).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.common import TimeWindow
from schemas.envelope import Envelope
from schemas.messages import (
    DonationReceived,
    DonationRefunded,
    FundOpened,
    MatchCompleted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    Message,
    NeedAmended,
    NeedPosted,
    NoShowRecorded,
    PledgeAmended,
    PledgeMade,
)
from schemas.specs import FundSpec, NeedSpec
from services.domain.matching import local_week
from services.domain.needs import need_quantity

ENDED = (MatchDeclined, MatchWithdrawn, NoShowRecorded, MatchExpired)
"""Events after which a match no longer holds its supply."""


@dataclass(frozen=True)
class Violation:
    """One broken promise, with the events that together break it (the last one broke it)."""

    kind: str  # over-spent | over-filled | double-booked | over-weekly-limit | earmark
    subject: uuid.UUID  # the fund, need or volunteer
    detail: str
    events: tuple[uuid.UUID, ...]

    def __str__(self) -> str:
        ids = ", ".join(str(e) for e in self.events)
        return f"{self.kind} {self.subject}: {self.detail}\n    events: {ids}"


@dataclass
class _Fund:
    spec: FundSpec | None = None
    donated: int = 0
    refunded: int = 0
    reserved: int = 0
    disbursed: int = 0
    money_events: list[uuid.UUID] = field(default_factory=list)


@dataclass
class _Match:
    event_id: uuid.UUID
    proposal: MatchProposed
    completed: bool = False


@dataclass
class InvariantChecker:
    """Folds events in log order; `violations` grows as promises break."""

    funds: dict[uuid.UUID, _Fund] = field(default_factory=lambda: defaultdict(_Fund))
    needs: dict[uuid.UUID, NeedSpec] = field(default_factory=dict)
    weekly_limit: dict[uuid.UUID, int] = field(default_factory=dict)
    active: dict[uuid.UUID, _Match] = field(default_factory=dict)
    seen: set[uuid.UUID] = field(default_factory=set)
    violations: list[Violation] = field(default_factory=list)
    events: int = 0
    archive_seq: int = 0
    """The archive position checked up to (set by the archive feeder)."""

    def check(self, event: Envelope[Message]) -> None:
        """Count one event (a second copy of an event id changes nothing)."""
        if event.event_id in self.seen:
            return
        self.seen.add(event.event_id)
        self.events += 1
        p = event.payload
        if isinstance(p, FundOpened):
            self.funds[p.fund_id].spec = p.fund
        elif isinstance(p, DonationReceived):
            self._money(p.fund_id, event.event_id, p.donation.amount.amount_minor, refund=False)
        elif isinstance(p, DonationRefunded):
            self._money(p.fund_id, event.event_id, p.amount.amount_minor, refund=True)
        elif isinstance(p, NeedPosted | NeedAmended):
            self.needs[p.need_id] = p.need
        elif isinstance(p, PledgeMade | PledgeAmended):
            self.weekly_limit[p.volunteer_id] = p.pledge.weekly_hour_limit * 60
        elif isinstance(p, MatchProposed):
            self._proposed(event, p)
        elif isinstance(p, ENDED):
            self._ended(p.match_id)
        elif isinstance(p, MatchCompleted):
            self._completed(p.match_id)

    def _money(self, fund_id: uuid.UUID, event_id: uuid.UUID, amount: int, refund: bool) -> None:
        f = self.funds[fund_id]
        f.money_events.append(event_id)
        if not refund:
            f.donated += amount
            return
        f.refunded += amount
        self._solvent(fund_id, event_id, "refund")

    def _solvent(self, fund_id: uuid.UUID, event_id: uuid.UUID, at: str) -> None:
        f = self.funds[fund_id]
        spent, funded = f.reserved + f.disbursed, f.donated - f.refunded
        if spent > funded:
            held = [m.event_id for m in self.active.values() if m.proposal.fund_id == fund_id]
            self.violations.append(
                Violation(
                    "over-spent",
                    fund_id,
                    f"at this {at}, reserved+disbursed {spent} > donated-refunded {funded}",
                    (*f.money_events, *[h for h in held if h != event_id], event_id),
                )
            )

    def _proposed(self, event: Envelope[Message], p: MatchProposed) -> None:
        others = [m for m in self.active.values() if m.proposal.need_id == p.need_id]
        self.active[p.match_id] = _Match(event.event_id, p)
        if p.fund_id is not None and p.amount is not None:
            self._fund_proposal(event, p)
        elif p.volunteer_id is not None and p.shift is not None:
            self._shift(event.event_id, p.volunteer_id, p.shift)
        need = self.needs.get(p.need_id)
        if need is None:
            return
        wanted = need_quantity(need)[0]
        filled = sum(_quantity(m.proposal) for m in others) + _quantity(p)
        if filled > wanted:
            self.violations.append(
                Violation(
                    "over-filled",
                    p.need_id,
                    f"{filled} matched for a need of {wanted}",
                    (*[m.event_id for m in others], event.event_id),
                )
            )

    def _fund_proposal(self, event: Envelope[Message], p: MatchProposed) -> None:
        assert p.fund_id is not None and p.amount is not None
        f = self.funds[p.fund_id]
        f.reserved += p.amount.amount_minor
        self._solvent(p.fund_id, event.event_id, "proposal")
        need = self.needs.get(p.need_id)
        if f.spec is not None and need is not None:
            problem = _earmark_problem(f.spec, need, event.recorded_at)
            if problem is not None:
                self.violations.append(Violation("earmark", p.fund_id, problem, (event.event_id,)))

    def _shift(self, event_id: uuid.UUID, volunteer_id: uuid.UUID, shift: TimeWindow) -> None:
        mine = [
            m
            for m in self.active.values()
            if m.proposal.volunteer_id == volunteer_id and m.event_id != event_id
        ]
        for m in mine:
            assert m.proposal.shift is not None
            if m.proposal.shift.overlaps(shift):
                self.violations.append(
                    Violation(
                        "double-booked",
                        volunteer_id,
                        f"shift {shift.start}–{shift.end} overlaps"
                        f" {m.proposal.shift.start}–{m.proposal.shift.end}",
                        (m.event_id, event_id),
                    )
                )
        limit = self.weekly_limit.get(volunteer_id)
        week = local_week(shift.start)
        same_week = [m for m in mine if local_week(_start(m)) == week]
        minutes = sum(_minutes(m) for m in same_week) + shift.minutes
        if limit is not None and minutes > limit:
            self.violations.append(
                Violation(
                    "over-weekly-limit",
                    volunteer_id,
                    f"{minutes} minutes in Nanjing week {week[0]}-W{week[1]:02d}, limit {limit}",
                    (*[m.event_id for m in same_week], event_id),
                )
            )

    def _ended(self, match_id: uuid.UUID) -> None:
        m = self.active.pop(match_id, None)
        if m is None or m.completed:
            return
        p = m.proposal
        if p.fund_id is not None and p.amount is not None:
            self.funds[p.fund_id].reserved -= p.amount.amount_minor

    def _completed(self, match_id: uuid.UUID) -> None:
        m = self.active.get(match_id)
        if m is None or m.completed:
            return
        m.completed = True
        p = m.proposal
        if p.fund_id is not None and p.amount is not None:
            f = self.funds[p.fund_id]
            f.reserved -= p.amount.amount_minor
            f.disbursed += p.amount.amount_minor


def _quantity(p: MatchProposed) -> int:
    return p.amount.amount_minor if p.amount is not None else 1


def _start(m: _Match) -> datetime:
    assert m.proposal.shift is not None
    return m.proposal.shift.start


def _minutes(m: _Match) -> int:
    assert m.proposal.shift is not None
    return m.proposal.shift.minutes


def _earmark_problem(fund: FundSpec, need: NeedSpec, at: datetime) -> str | None:
    """Why paying this need from this fund at `at` breaks an earmark (None when it does not)."""
    if fund.categories and need.category not in fund.categories:
        return f"need category {need.category.value} not in the fund's categories"
    if fund.districts and need.place.district not in fund.districts:
        return f"need district {need.place.district} not in the fund's districts"
    if fund.valid_from and at < fund.valid_from:
        return f"decided at {at}, before the fund is valid ({fund.valid_from})"
    if fund.valid_until and at >= fund.valid_until:
        return f"decided at {at}, after the fund expired ({fund.valid_until})"
    return None


def check_log(events: Iterable[Envelope[Message]]) -> InvariantChecker:
    """Check a whole log (decoded events in log order)."""
    checker = InvariantChecker()
    for e in events:
        checker.check(e)
    return checker
