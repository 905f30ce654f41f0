"""`exchange audit trail`: every step from a donation, fund, need or volunteer to now.

Money in a fund is fungible: the journal knows how much a fund holds, not whose fen it is. To
say where a donation's fen went, the trail **allocates** (docs/audit.md, "Allocation rule"):

1. a refund comes out of the donation it names;
2. the rest of each donation, in the order donations were received, pays for the fund's
   disbursements in the order they were confirmed, then for the reservations still held in
   the order they were proposed (first in, first out);
3. whatever is left of a donation is still available in the fund.

Released reservations are not spending: the money went back to available. The rule is a
convention of presentation; the balances themselves come from the journal. No I/O here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from schemas.common import Role
from schemas.envelope import Envelope
from schemas.messages import FundOpened, FundReserveSet, Message
from schemas.sealed import Sealed
from services.audit.reports.books import Books, MatchBook


@dataclass(frozen=True)
class Portion:
    """Part of a donation: `use` is disbursed, reserved, refunded or available."""

    donation_id: uuid.UUID
    use: str
    amount_minor: int
    match_id: uuid.UUID | None = None
    need_id: uuid.UUID | None = None


def allocate(books: Books, fund_id: uuid.UUID) -> list[Portion]:
    """Where each donation of `fund_id` went, by the allocation rule above."""
    donations = sorted(
        (d for d in books.donations.values() if d.fund_id == fund_id), key=lambda d: d.received
    )
    left = {d.donation_id: d.amount_minor - d.refunded_minor for d in donations}
    out = [
        Portion(d.donation_id, "refunded", d.refunded_minor) for d in donations if d.refunded_minor
    ]
    money = [m for m in books.matches.values() if m.terms.fund_id == fund_id]
    spent = sorted((m for m in money if m.status == "completed"), key=lambda m: m.settled or 0)
    held = sorted(
        (m for m in money if m.status in ("proposed", "accepted")), key=lambda m: m.proposed
    )
    for m, use in [(m, "disbursed") for m in spent] + [(m, "reserved") for m in held]:
        want = m.terms.amount_minor or 0
        for d in donations:
            take = min(want, left[d.donation_id])
            if take > 0:
                left[d.donation_id] -= take
                want -= take
                out.append(Portion(d.donation_id, use, take, m.match_id, m.need_id))
            if want == 0:
                break
    out += [Portion(d.donation_id, "available", left[d.donation_id]) for d in donations]
    return [p for p in out if p.amount_minor > 0]


@dataclass(frozen=True)
class Step:
    """One line of a trail: when, what happened, who did it (named, never a volunteer's id)."""

    at: datetime
    event_type: str
    event_id: uuid.UUID | None
    what: str
    by: str


def who(books: Books, org_id: str, role: Role | None = None) -> str:
    """An actor's public name: an organisation's name, a volunteer's pseudonym, else the id."""
    if org_id in books.organisations:
        return books.organisations[org_id]
    try:
        vid = uuid.UUID(org_id)
    except ValueError:
        return org_id
    if vid in books.volunteers:
        return books.volunteers[vid].pseudonym
    return "(volunteer)" if role is Role.VOLUNTEER else org_id


def _fen(minor: int) -> str:
    return f"{minor} fen"


def _match_steps(books: Books, m: MatchBook) -> list[str]:
    need = books.needs.get(m.need_id)
    where = f"{need.title} ({need.district})" if need else str(m.need_id)
    if m.terms.supply == "fund":
        amount = _fen(m.terms.amount_minor or 0)
        outcome = {
            "completed": f"disbursed {amount} to {where}, confirmed by "
            f"{who(books, m.settled_by or '')}",
        }.get(m.status, f"reservation of {amount} for {where}: {m.status}")
        return [outcome]
    v = books.volunteers.get(m.terms.volunteer_id) if m.terms.volunteer_id else None
    name = v.pseudonym if v else "(volunteer)"
    if m.status == "completed":
        served = m.minutes_served if m.minutes_served is not None else m.terms.minutes
        return [
            f"{name} served {served} of {m.terms.minutes} planned minutes at {where}, "
            f"confirmed by {who(books, m.settled_by or '')}"
        ]
    return [f"{name} shift of {m.terms.minutes} minutes at {where}: {m.status}"]


def _event_steps(books: Books, events: list[Envelope[Message]], keep: set[str]) -> list[Step]:
    out = []
    for env in events:
        if env.stream_id in keep or str(env.causation_id) in keep:
            out.append(
                Step(
                    env.recorded_at,
                    env.event_type,
                    env.event_id,
                    _describe(books, env),
                    who(books, env.actor.org_id, env.actor.role),
                )
            )
    return out


def _describe(books: Books, env: Envelope[Message]) -> str:
    p = env.payload
    if isinstance(p, FundOpened):
        return f"opened, holding {p.urgent_reserve_percent} % for urgent needs"
    if isinstance(p, FundReserveSet):
        return f"held for urgent needs set to {p.urgent_reserve_percent} % (from now on)"
    amount = getattr(p, "amount", None)
    donation = getattr(p, "donation", None)
    if donation is not None:
        # the label as the report reader opened it (sealed labels, docs/privacy.md)
        book = books.donations.get(getattr(p, "donation_id", None))  # type: ignore[arg-type]
        donor = book.donor if book is not None else donation.donor
        if isinstance(donor, Sealed):  # a refused donation: no book, so not opened
            donor = "(a sealed label)"
        return f"received {_fen(donation.amount.amount_minor)} from {donor}"
    if amount is not None and hasattr(amount, "amount_minor"):
        return f"{env.event_type}: {_fen(amount.amount_minor)}"
    return env.event_type


def trail(
    books: Books,
    events: list[Envelope[Message]],
    *,
    donation: uuid.UUID | None = None,
    fund: uuid.UUID | None = None,
    need: uuid.UUID | None = None,
    volunteer: uuid.UUID | None = None,
) -> list[Step]:
    """The steps about exactly one of a donation, fund, need or volunteer, in archive order,
    followed by where the money (allocation) or the minutes ended up."""
    if donation is not None:
        d = books.donations[donation]
        steps = [
            Step(
                d.received_at,
                "DonationReceived",
                d.event_id,
                f"received {_fen(d.amount_minor)} from {d.donor} into "
                f"{books.funds[d.fund_id].name if d.fund_id in books.funds else d.fund_id}"
                + (f" (note: {d.note})" if d.note else ""),
                who(books, d.recorded_by),
            )
        ]
        return steps + _allocation_steps(books, d.fund_id, {donation})
    if fund is not None:
        streams = {f"fund:{fund}"}
        streams |= {
            f"match:{m.match_id}" for m in books.matches.values() if m.terms.fund_id == fund
        }
        ids = {d.donation_id for d in books.donations.values() if d.fund_id == fund}
        return _event_steps(books, events, streams) + _allocation_steps(books, fund, ids)
    if need is not None:
        ms = [m for m in books.matches.values() if m.need_id == need]
        steps = _event_steps(books, events, {f"need:{need}"} | {f"match:{m.match_id}" for m in ms})
        for m in ms:
            steps += [
                Step(m.settled_at or steps[-1].at, "outcome", None, s, "")
                for s in _match_steps(books, m)
            ]
            if m.terms.fund_id is not None:
                steps += [
                    s
                    for s in _allocation_steps(books, m.terms.fund_id, None)
                    if str(m.match_id) in s.what
                ]
        return steps
    assert volunteer is not None
    ms = [m for m in books.matches.values() if m.terms.volunteer_id == volunteer]
    steps = _event_steps(
        books, events, {f"volunteer:{volunteer}"} | {f"match:{m.match_id}" for m in ms}
    )
    for m in ms:
        at = m.settled_at or (steps[-1].at if steps else datetime.min)
        steps += [Step(at, "outcome", None, s, "") for s in _match_steps(books, m)]
    return steps


def _allocation_steps(
    books: Books, fund_id: uuid.UUID, donations: set[uuid.UUID] | None
) -> list[Step]:
    out = []
    for p in allocate(books, fund_id):
        if donations is not None and p.donation_id not in donations:
            continue
        d = books.donations[p.donation_id]
        m = books.matches.get(p.match_id) if p.match_id else None
        n = books.needs.get(p.need_id) if p.need_id else None
        where = f" for {n.title} ({n.district})" if n else ""
        by = who(books, m.settled_by) if m and m.settled_by and p.use == "disbursed" else ""
        ref = f" [match {p.match_id}]" if p.match_id else ""
        out.append(
            Step(
                m.settled_at if m and m.settled_at else d.received_at,
                f"allocation:{p.use}",
                m.settled_event if m else None,
                f"{_fen(p.amount_minor)} of donation {d.donation_id} {p.use}{where}{ref}",
                by,
            )
        )
    return out


def render(steps: list[Step]) -> str:
    """One line per step."""
    return "".join(
        f"{s.at.isoformat()}  {s.event_type:<26} {s.what}" + (f"  — {s.by}" if s.by else "") + "\n"
        for s in steps
    )


def to_json(steps: list[Step]) -> list[dict[str, str | None]]:
    """Plain JSON: one object per step."""
    return [
        {
            "at": s.at.isoformat(),
            "event_type": s.event_type,
            "event_id": str(s.event_id) if s.event_id else None,
            "what": s.what,
            "by": s.by,
        }
        for s in steps
    ]
