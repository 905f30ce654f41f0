"""The public transparency site's figures: pure functions of plain facts, no I/O.

What may be public is decided here, once (docs/transparency.md): sums and counts by district,
by category, by fund and by month, never a row about one need, volunteer or donor. Facts carry
no titles, descriptions, pseudonyms, donor labels or ids of people, so nothing here could print
one. A need's amount is personal enough to withhold (the foundation has no way yet to choose to
publish one), and a district or category with one or two needs would show exactly that: cells
behind fewer than `MIN_NEEDS` needs are pooled into "other", and when the pool is still that
small the smallest shown cell joins it, so no subtraction from the totals singles a need out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from services.domain.fund_reserve import held_for_urgent

ZONE = ZoneInfo("Asia/Shanghai")
MIN_NEEDS = 3
"""Fewest needs a published cell may stand for."""
OTHER = ""
"""The pooled cell's name (the page shows it as "other districts" / "other categories")."""
MET = ("matched", "fulfilled")
"""Need statuses counted as met (cancelled and expired needs are posted, never met)."""
HOLDING = ("proposed", "accepted")
"""Match statuses whose money is reserved, not yet paid."""


@dataclass(frozen=True)
class NeedFact:
    """What the public may know of a need: where, what kind of help, how far it got."""

    need_id: uuid.UUID
    category: str
    district: str
    status: str


@dataclass(frozen=True)
class MatchFact:
    """A match's money or minutes, the need it served, and when it was settled."""

    need_id: uuid.UUID
    fund_id: uuid.UUID | None
    amount_minor: int | None
    minutes_served: int | None
    status: str
    settled_at: datetime | None


@dataclass(frozen=True)
class DonationFact:
    """Money into a fund (net of refunds) and when: no donor, no note."""

    fund_id: uuid.UUID
    amount_minor: int
    refunded_minor: int
    received_at: datetime


@dataclass(frozen=True)
class FundFact:
    """A fund as opened: its name, its foundation's registered name and its earmarks."""

    fund_id: uuid.UUID
    name: str
    foundation: str
    currency: str
    categories: tuple[str, ...]
    districts: tuple[str, ...]
    cap_per_need_minor: int | None
    valid_until: datetime | None
    urgent_reserve_percent: int = 0
    """The share of its net donations the foundation holds back for high and critical needs."""


@dataclass
class Cell:
    """Totals of one district, category (or of the pool of small ones)."""

    name: str
    needs: set[uuid.UUID] = field(default_factory=set)
    met: int = 0
    reserved: int = 0
    paid: int = 0
    minutes: int = 0

    @property
    def posted(self) -> int:
        return len(self.needs)

    def add(self, other: Cell) -> None:
        self.needs |= other.needs
        self.met += other.met
        self.reserved += other.reserved
        self.paid += other.paid
        self.minutes += other.minutes


@dataclass(frozen=True)
class Month:
    """One calendar month in Nanjing: money received and paid out, minutes served."""

    month: str
    received: int
    paid: int
    minutes: int


@dataclass(frozen=True)
class Totals:
    """The whole exchange: the public site's front page."""

    received: int
    reserved: int
    paid: int
    posted: int
    met: int
    minutes: int
    by_district: list[Cell]
    by_category: list[Cell]
    months: list[Month]
    withheld: bool
    """Fewer than MIN_NEEDS needs in all: the figures would describe them, so none are shown."""


@dataclass(frozen=True)
class FundFigures:
    """One fund: its earmarks, what it received and what it paid for, by category and
    district (pooled as the totals are)."""

    fund: FundFact
    received: int
    refunded: int
    reserved: int
    paid: int
    by_category: list[Cell]
    by_district: list[Cell]

    @property
    def held_for_urgent(self) -> int:
        """What the fund holds back for urgent needs now, of the money still available."""
        available = self.received - self.reserved - self.paid
        return held_for_urgent(self.received, available, self.fund.urgent_reserve_percent)


def pooled(cells: Iterable[Cell], least: int = MIN_NEEDS) -> list[Cell]:
    """Cells in name order, those behind fewer than `least` needs pooled into one `OTHER`
    cell at the end; while the pool is smaller than `least`, the smallest shown cell joins it
    (else the pool could be worked out from the totals and the rest)."""
    ordered = sorted(cells, key=lambda c: (c.posted, c.name))
    small = [c for c in ordered if c.posted < least]
    shown = [c for c in ordered if c.posted >= least]
    while small and len(set().union(*(c.needs for c in small))) < least and shown:
        small.append(shown.pop(0))
    out = sorted(shown, key=lambda c: c.name)
    if small:
        pool = Cell(OTHER)
        for c in small:
            pool.add(c)
        out.append(pool)
    return out


def _cells(
    needs: dict[uuid.UUID, NeedFact],
    matches: Iterable[MatchFact],
    key: Callable[[NeedFact], str],
    only: set[uuid.UUID] | None = None,
) -> list[Cell]:
    """Cells by `key` of the need; `only`: count just these needs (a fund's)."""
    cells: dict[str, Cell] = {}
    for n in needs.values():
        if only is not None and n.need_id not in only:
            continue
        c = cells.setdefault(key(n), Cell(key(n)))
        c.needs.add(n.need_id)
        c.met += n.status in MET
    for m in matches:
        need = needs.get(m.need_id)
        if need is None or (only is not None and m.need_id not in only):
            continue
        c = cells[key(need)]
        c.reserved += (m.amount_minor or 0) if m.status in HOLDING else 0
        c.paid += (m.amount_minor or 0) if m.status == "completed" else 0
        c.minutes += (m.minutes_served or 0) if m.status == "completed" else 0
    return pooled(cells.values())


def month_of(at: datetime) -> str:
    """ "2026-12": the month of a moment in Nanjing."""
    return at.astimezone(ZONE).strftime("%Y-%m")


def months(donations: Iterable[DonationFact], matches: Iterable[MatchFact]) -> list[Month]:
    """Money received (by when it was received), paid out and minutes served (by when the
    match was confirmed), per month, oldest first; months with nothing are left out."""
    rows: dict[str, list[int]] = {}
    for d in donations:
        rows.setdefault(month_of(d.received_at), [0, 0, 0])[0] += d.amount_minor
    for m in matches:
        if m.status != "completed" or m.settled_at is None:
            continue
        row = rows.setdefault(month_of(m.settled_at), [0, 0, 0])
        row[1] += m.amount_minor or 0
        row[2] += m.minutes_served or 0
    return [Month(k, *v) for k, v in sorted(rows.items())]


def totals(
    needs: Iterable[NeedFact], matches: Iterable[MatchFact], donations: Iterable[DonationFact]
) -> Totals:
    """The front page: the whole exchange, by district, by category and by month."""
    by_id = {n.need_id: n for n in needs}
    ms, ds = list(matches), list(donations)
    if len(by_id) < MIN_NEEDS:
        return Totals(0, 0, 0, 0, 0, 0, [], [], [], withheld=True)
    return Totals(
        received=sum(d.amount_minor - d.refunded_minor for d in ds),
        reserved=sum(m.amount_minor or 0 for m in ms if m.status in HOLDING),
        paid=sum(m.amount_minor or 0 for m in ms if m.status == "completed"),
        posted=len(by_id),
        met=sum(n.status in MET for n in by_id.values()),
        minutes=sum(m.minutes_served or 0 for m in ms if m.status == "completed"),
        by_district=_cells(by_id, ms, lambda n: n.district),
        by_category=_cells(by_id, ms, lambda n: n.category),
        months=months(ds, ms),
        withheld=False,
    )


def fund_figures(
    fund: FundFact,
    needs: Iterable[NeedFact],
    matches: Iterable[MatchFact],
    donations: Iterable[DonationFact],
) -> FundFigures:
    """One fund's page: its earmarks and money, and the needs it paid for or holds money for
    (cancelled, expired and declined matches spent nothing and are not counted)."""
    by_id = {n.need_id: n for n in needs}
    mine = [m for m in matches if m.fund_id == fund.fund_id]
    served = {m.need_id for m in mine if m.status in (*HOLDING, "completed")}
    spent = [m for m in mine if m.need_id in served]
    gifts = [d for d in donations if d.fund_id == fund.fund_id]
    return FundFigures(
        fund=fund,
        received=sum(d.amount_minor for d in gifts),
        refunded=sum(d.refunded_minor for d in gifts),
        reserved=sum(m.amount_minor or 0 for m in spent if m.status in HOLDING),
        paid=sum(m.amount_minor or 0 for m in spent if m.status == "completed"),
        by_category=_cells(by_id, spent, lambda n: n.category, served),
        by_district=_cells(by_id, spent, lambda n: n.district, served),
    )
