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
different partitions; no check here depends on that.

Money is judged by two rules, because a refund is decided by intake (which knows donations,
not reservations) and answered by the matcher afterwards (docs/architecture.md, "Departures"):

- **disbursed <= donated - refunded** at every event. Confirmed money cannot be taken back, so
  a refund or a confirmation that breaks this is reported at once.
- **reserved + disbursed <= donated - refunded** wherever no refund of the fund still awaits the
  matcher's answer. A refund may leave a fund over-reserved: its owner then withdraws the
  newest unconfirmed proposals and revokes holds on other partitions, and those withdrawals
  reach the log after the refund. Until the fund is back within (or holds only confirmed
  money), it is *pending*, not broken. It is a violation only if it is still over at the end
  of the log `SETTLE` after the refund (`verdict`). No money leaves on a reservation, so a
  long over-reservation harms nobody unless it is confirmed, which the first rule catches.
  A proposal that goes over is reported at once, as before, unless a refund is pending or
  the proposal may have been decided before the matcher read the latest one
  (`_decided_before`).

docs/audit.md ("Money: what is promised") gives the reasoning in full.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

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

SETTLE = timedelta(minutes=5)
"""How long after a refund (in recorded time) the matcher's withdrawals may take to reach the
log. The matcher answers a refund in the same step as it reads it, and withdrawals across
partitions take one more hop each way; minutes are ample for that, while a fund that stays
over-reserved longer, with nothing confirmed meanwhile, is one the matcher did not answer.
It is measured in `recorded_at`, which a restore or a replay keeps, never in archive timing."""


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
class _Refund:
    """A refund the matcher must answer: its id names the violation, its time starts `SETTLE`."""

    event_id: uuid.UUID
    recorded_at: datetime


@dataclass
class _Fund:
    spec: FundSpec | None = None
    donated: int = 0
    refunded: int = 0
    reserved: int = 0
    disbursed: int = 0
    money_events: list[uuid.UUID] = field(default_factory=list)
    last_refund: _Refund | None = None
    pending: _Refund | None = None
    """Set while a refund has left the fund over-reserved and the matcher's withdrawals are
    not all in the log yet: the refund they answer (the latest one)."""

    @property
    def funded(self) -> int:
        """What the fund holds net: the bound for what it may disburse and reserve."""
        return self.donated - self.refunded

    @property
    def over_reserved(self) -> bool:
        """More is promised than the fund holds, and some of it can still be withdrawn."""
        return self.reserved > 0 and self.reserved + self.disbursed > self.funded


@dataclass(frozen=True)
class Pending:
    """A fund a refund left over-reserved, waiting for the matcher's withdrawals."""

    fund_id: uuid.UUID
    refund: uuid.UUID
    detail: str

    def __str__(self) -> str:
        return f"pending {self.fund_id}: {self.detail} (refund {self.refund})"


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
            self._money(event, p.fund_id, p.donation.amount.amount_minor)
        elif isinstance(p, DonationRefunded):
            self._money(event, p.fund_id, p.amount.amount_minor)
        elif isinstance(p, NeedPosted | NeedAmended):
            self.needs[p.need_id] = p.need
        elif isinstance(p, PledgeMade | PledgeAmended):
            self.weekly_limit[p.volunteer_id] = p.pledge.weekly_hour_limit * 60
        elif isinstance(p, MatchProposed):
            self._proposed(event, p)
        elif isinstance(p, ENDED):
            self._ended(p.match_id)
        elif isinstance(p, MatchCompleted):
            self._completed(event.event_id, p.match_id)

    def _money(self, event: Envelope[Message], fund_id: uuid.UUID, amount: int) -> None:
        f = self.funds[fund_id]
        f.money_events.append(event.event_id)
        if isinstance(event.payload, DonationReceived):
            f.donated += amount
            self._settled(f)
            return
        f.refunded += amount
        f.last_refund = _Refund(event.event_id, event.recorded_at)
        self._disbursed_within(fund_id, event.event_id, "refund")
        if f.over_reserved:  # the matcher's withdrawals are still to come
            f.pending = f.last_refund

    def _disbursed_within(self, fund_id: uuid.UUID, event_id: uuid.UUID, at: str) -> None:
        """Confirmed money must stay covered: reported at once, nobody can answer it."""
        f = self.funds[fund_id]
        if f.disbursed > f.funded:
            self._over_spent(fund_id, event_id, f"at this {at}, disbursed {f.disbursed}")

    def _over_spent(self, fund_id: uuid.UUID, event_id: uuid.UUID, what: str) -> None:
        self.violations.append(
            Violation(
                "over-spent",
                fund_id,
                f"{what} > donated-refunded {self.funds[fund_id].funded}",
                self._fund_events(fund_id, event_id),
            )
        )

    def _fund_events(self, fund_id: uuid.UUID, last: uuid.UUID) -> tuple[uuid.UUID, ...]:
        """The fund's money events, the proposals holding it, and `last` (which broke it)."""
        f = self.funds[fund_id]
        held = [m.event_id for m in self.active.values() if m.proposal.fund_id == fund_id]
        return (*[e for e in f.money_events if e != last], *[h for h in held if h != last], last)

    def _settled(self, f: _Fund) -> None:
        """The matcher (or a donation) brought a pending fund back within what it holds."""
        if f.pending is not None and not f.over_reserved:
            f.pending = None

    def pending(self, now: datetime) -> list[Pending]:
        """Funds over-reserved by a refund less than `SETTLE` before `now`: the matcher's
        withdrawals may still be on their way, so they are neither clean nor broken yet."""
        return [
            Pending(fund_id, f.pending.event_id, self._over_detail(f))
            for fund_id, f in self.funds.items()
            if f.pending is not None and now < f.pending.recorded_at + SETTLE
        ]

    def verdict(self, now: datetime) -> list[Violation]:
        """Every violation at `now` (the end of the log): those found in the fold, and each
        over-reservation a refund left that the matcher had not withdrawn `SETTLE` later."""
        late = [
            Violation(
                "over-spent",
                fund_id,
                f"{self._over_detail(f)}, still over at the end of the log,"
                f" {SETTLE} after the refund: the matcher did not withdraw enough",
                self._fund_events(fund_id, f.pending.event_id),
            )
            for fund_id, f in self.funds.items()
            if f.pending is not None and now >= f.pending.recorded_at + SETTLE
        ]
        return [*self.violations, *late]

    @staticmethod
    def _over_detail(f: _Fund) -> str:
        return (
            f"after a refund, reserved+disbursed {f.reserved + f.disbursed}"
            f" > donated-refunded {f.funded}"
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
        if f.reserved + f.disbursed > f.funded:
            refund = f.last_refund
            if f.pending is None and refund is not None and _decided_before(event, refund):
                f.pending = refund  # decided before the matcher saw the refund: it answers both
            if f.pending is None:
                spent = f.reserved + f.disbursed
                self._over_spent(
                    p.fund_id, event.event_id, f"at this proposal, reserved+disbursed {spent}"
                )
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
            f = self.funds[p.fund_id]
            f.reserved -= p.amount.amount_minor
            self._settled(f)

    def _completed(self, event_id: uuid.UUID, match_id: uuid.UUID) -> None:
        m = self.active.get(match_id)
        if m is None or m.completed:
            return
        m.completed = True
        p = m.proposal
        if p.fund_id is not None and p.amount is not None:
            f = self.funds[p.fund_id]
            f.reserved -= p.amount.amount_minor
            f.disbursed += p.amount.amount_minor
            self._disbursed_within(p.fund_id, event_id, "confirmation")
            self._settled(f)


def _decided_before(event: Envelope[Message], refund: _Refund) -> bool:
    """Whether a proposal archived after a refund may have been decided before the matcher
    answered it: a decision carries its cause's `recorded_at`, and the ledger may archive it
    after later inputs of the same partition (they are on another topic). So a proposal whose
    cause was recorded no later than `SETTLE` after the refund may be one the refund's
    withdrawals will take back."""
    return event.recorded_at <= refund.recorded_at + SETTLE


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
        return f"need category {need.category} not in the fund's categories"
    if fund.districts and need.place.district not in fund.districts:
        return f"need district {need.place.district} not in the fund's districts"
    if fund.valid_from and at < fund.valid_from:
        return f"decided at {at}, before the fund is valid ({fund.valid_from})"
    if fund.valid_until and at >= fund.valid_until:
        return f"decided at {at}, after the fund expired ({fund.valid_until})"
    return None


def check_log(events: Iterable[Envelope[Message]]) -> InvariantChecker:
    """Check a whole log (decoded events in log order); `verdict(now)` adds what is still
    unresolved at its end."""
    checker = InvariantChecker()
    for e in events:
        checker.check(e)
    return checker
