"""`exchange audit as-of TIME`: balances, need statuses and volunteer minutes as they were.

The moment is compared with each archived event's `recorded_at`, not the ledger's
`archived_at`: `recorded_at` is when the exchange first recorded the chain the event belongs
to, it is part of the hashed row (tamper-evident) and identical after a replay or a restore,
while `archived_at` is the ledger's wall clock, not hashed and rewritten by a restore.
Consequences carry their cause's `recorded_at`, so "as of T" includes what was decided about
everything recorded by T, even if the deciding service ran a moment later. No I/O here.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from services.audit.reports.books import Books


@dataclass(frozen=True)
class FundAt:
    """A fund's money at the moment, in minor units of its currency."""

    fund_id: uuid.UUID
    name: str
    currency: str
    available: int
    reserved: int
    disbursed: int


@dataclass(frozen=True)
class NeedAt:
    """A need's status and how much of it was matched (filled) and delivered (completed)."""

    need_id: uuid.UUID
    title: str
    district: str
    status: str
    wanted: int
    filled: int
    completed: int
    unit: str


@dataclass(frozen=True)
class VolunteerAt:
    """A volunteer's minutes (by pseudonym: the log knows no more)."""

    volunteer_id: uuid.UUID
    pseudonym: str
    offered: int
    reserved: int
    served: int


@dataclass(frozen=True)
class AsOf:
    """The state at `at`, after `events` events."""

    at: datetime
    events: int
    funds: list[FundAt]
    needs: list[NeedAt]
    volunteers: list[VolunteerAt]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON types (ids and times as strings)."""
        out: dict[str, Any] = _plain(asdict(self))
        return out


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def as_of(books: Books, at: datetime) -> AsOf:
    """Read the state from books folded up to `at` (services.audit.reports.books.fold)."""
    funds = []
    for f in sorted(books.funds.values(), key=lambda f: f.name):
        b = books.fund_balances(f.fund_id)
        funds.append(
            FundAt(f.fund_id, f.name, f.currency, b["available"], b["reserved"], b["disbursed"])
        )
    needs = [
        NeedAt(n.need_id, n.title, n.district, n.status, n.wanted, n.filled, n.completed, n.unit)
        for n in sorted(books.needs.values(), key=lambda n: (n.district, n.title))
    ]
    vols = []
    for v in sorted(books.volunteers.values(), key=lambda v: v.pseudonym):
        m = books.volunteer_minutes(v.volunteer_id)
        vols.append(
            VolunteerAt(v.volunteer_id, v.pseudonym, m["offered"], m["reserved"], m["served"])
        )
    return AsOf(at, books.events, funds, needs, vols)


def yuan(minor: int) -> str:
    """Fen as yuan with two decimals, exactly (no float)."""
    sign = "-" if minor < 0 else ""
    q, r = divmod(abs(minor), 100)
    return f"{sign}{q:,}.{r:02d}"


def table(rows: list[list[str]], header: list[str]) -> str:
    """A plain text table; widths count CJK characters as two columns."""

    def width(s: str) -> int:
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)

    cols = [max(width(x) for x in col) for col in zip(header, *rows, strict=False)]

    def line(cells: list[str]) -> str:
        return "  ".join(c + " " * (w - width(c)) for c, w in zip(cells, cols, strict=False))

    return "\n".join([line(header), line(["-" * w for w in cols]), *(line(r) for r in rows)])


def render(report: AsOf) -> str:
    """The readable form: one table each for funds, needs and volunteers."""
    parts = [f"as of {report.at.isoformat()} (recorded_at), {report.events} events"]
    parts.append(
        table(
            [
                [f.name, f.currency, yuan(f.available), yuan(f.reserved), yuan(f.disbursed)]
                for f in report.funds
            ],
            ["fund 基金", "cur", "available 可用", "reserved 预留", "disbursed 已拨付"],
        )
    )
    parts.append(
        table(
            [
                [n.title, n.district, n.status, str(n.wanted), str(n.filled), str(n.completed)]
                for n in report.needs
            ],
            ["need 需求", "district 区", "status", "wanted", "filled", "completed"],
        )
    )
    parts.append(
        table(
            [
                [v.pseudonym, str(v.offered), str(v.reserved), str(v.served)]
                for v in report.volunteers
            ],
            ["volunteer 志愿者", "offered min", "reserved min", "served min"],
        )
    )
    return "\n\n".join(parts) + "\n"
