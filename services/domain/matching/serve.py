"""Supply meets demand within a partition, in the fair order of service; and supply goes
back when a proposal ends unconfirmed."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from datetime import datetime

from schemas.common import Money, NeedKind
from schemas.messages import (
    MatchWithdrawn,
    SupplyKind,
)
from schemas.reservations import (
    SupplyReleased,
)
from services.domain.matching.decisions import Decisions
from services.domain.matching.fit import (
    distance_rank,
    fund_may_pay,
    fund_share,
    kept_for,
    view_fits,
    volunteer_fits,
)
from services.domain.matching.state import ACTIVE, Fund, MatcherState, OpenNeed, Proposal, Volunteer
from services.domain.matching.views import NeedView, time_window

# ---- supply meets demand ----


def book_volunteer(state: MatcherState, d: Decisions, need: OpenNeed, vol: Volunteer) -> None:
    shift, slot = need.view.shift, need.view.slot
    assert shift is not None and slot is not None
    proposal = d.propose(
        state,
        need,
        {
            "supply": SupplyKind.VOLUNTEER,
            "volunteer_id": vol.volunteer_id,
            "shift": time_window(shift),
            "minutes": slot[2],
        },
        "skills, availability, travel and weekly limit fit",
    )
    vol.booked[proposal.match_id] = slot
    need.volunteers.add(vol.volunteer_id)
    need.remaining -= 1


def reserve_fund(state: MatcherState, d: Decisions, need: OpenNeed, fund: Fund, share: int) -> None:
    d.propose(
        state,
        need,
        {
            "supply": SupplyKind.FUND,
            "fund_id": fund.fund_id,
            "amount": Money(amount_minor=share, currency=fund.spec.currency),
        },
        "fund earmarks allow this category, district and period",
    )
    fund.available -= share
    need.remaining -= share
    need.from_funds[fund.fund_id] = need.from_funds.get(fund.fund_id, 0) + share


def candidate_order(view: NeedView, vol: Volunteer) -> tuple[object, ...]:
    """Which of the volunteers who fit a shift is asked first: the most reliable, the nearest,
    the least booked, the earliest pledged."""
    return (vol.no_shows, distance_rank(vol.pledge, view), len(vol.booked), vol.arrival)


def serve_need(state: MatcherState, need: OpenNeed, d: Decisions, now: datetime) -> None:
    """Give one need what the supply can: volunteers least booked (and most reliable) first,
    funds expiring first."""
    if not need.is_open(now):
        return
    if need.view.kind is NeedKind.VOLUNTEER_HOURS:
        # Those who fit, in order of preference. The same as testing each candidate in that
        # order until the need is met: booking one volunteer changes no other's fit, except
        # that a volunteer is booked once (checked again below).
        view = need.view
        policy = state.policy
        kept = kept_for(need, now, policy.reserve_horizon, policy.urgent_hours_percent)
        fitting = [v for v in state.candidates_for(need) if volunteer_fits(need, v, kept)]
        fitting.sort(key=lambda v: candidate_order(view, v))
        for vol in fitting:
            if need.remaining <= 0:
                break
            if vol.volunteer_id not in need.volunteers:
                book_volunteer(state, d, need, vol)
    else:
        for fund in state.funds_in_order():
            if need.remaining <= 0:
                break
            share = fund_share(need, fund, now, state.policy.reserve_horizon)
            if share > 0:
                reserve_fund(state, d, need, fund, share)
    if need.remaining > 0 and state.listings:
        # late import: asking elsewhere serves needs again when answers come (a cycle)
        from services.domain.matching.across import ask_elsewhere

        ask_elsewhere(state, need, d, now)


MONEY_SHELF = "money"


def shelf(need: OpenNeed) -> str:
    """Where an unfilled need is filed: money and goods together, shifts by district."""
    if need.view.kind is NeedKind.VOLUNTEER_HOURS:
        return f"shift:{need.view.place.district}"
    return MONEY_SHELF


def mark_unfilled(state: MatcherState, need: OpenNeed) -> None:
    state.unfilled.setdefault(shelf(need), set()).add(need.need_id)


def open_needs(
    state: MatcherState,
    now: datetime,
    shelves: Iterable[str],
    could_fit: Callable[[OpenNeed], bool] | None = None,
) -> list[OpenNeed]:
    """Open needs on these shelves, in the fair order of service (`fair_order`); with
    `could_fit`, only those it accepts, still in the order all of them would be served in."""
    found = []
    for shelf in shelves:
        ids = state.unfilled.get(shelf, set())
        for need_id in list(ids):
            need = state.needs[need_id]
            if need.cancelled or need.remaining <= 0:
                ids.discard(need_id)  # back only through release or an amendment
            elif need.is_open(now):
                found.append(need)
    if could_fit is None:
        return fair_order(found)
    return fair_order_among(found, [need for need in found if could_fit(need)])


def fair_order(needs: Iterable[OpenNeed]) -> list[OpenNeed]:
    """The order in which needs share contested supply: urgency first; then, among comparable
    needs (same urgency, deadlines in the same week), one need per community per round, so no
    community takes a second share while another's comparable need waits; within a round,
    deadline, then waiting time.

    Deterministic and pure: a replay orders the same needs the same way."""
    # Both sorts are stable sorts by key, written as sorts of (key, position, need) tuples so
    # that each key is computed once: open needs are ordered for every donation and pledge.
    ranked = sorted(
        [(-n.view.urgency, n.view.deadline, n.arrival, i, n) for i, n in enumerate(needs)]
    )
    rounds: dict[tuple[int, tuple[int, int], str], int] = {}
    keyed = []
    for i, (urgency, deadline, arrival, _, need) in enumerate(ranked):
        group = (urgency, need.view.deadline_week, need.owner)
        turn = rounds.get(group, 0)
        rounds[group] = turn + 1
        keyed.append((urgency, group[1], turn, deadline, arrival, i, need))
    keyed.sort()
    return [k[-1] for k in keyed]


def fair_order_among(everyone: list[OpenNeed], chosen: list[OpenNeed]) -> list[OpenNeed]:
    """`fair_order(everyone)` with only the needs of `chosen` (a sub-list) kept.

    Why: a pledge or a donation is offered to every open need, but only a few could take it.
    A need's turn in its group counts every open need of the group before it, so turns are
    counted over `everyone`, but only in the groups of the chosen needs, and only those are
    sorted."""
    if not chosen:
        return []
    picked = {id(need) for need in chosen}
    groups: dict[tuple[int, tuple[int, int], str], list[OpenNeed]] = {
        (-need.view.urgency, need.view.deadline_week, need.owner): [] for need in chosen
    }
    for need in everyone:
        members = groups.get((-need.view.urgency, need.view.deadline_week, need.owner))
        if members is not None:
            members.append(need)
    keyed = []
    for (urgency, week, _), members in groups.items():
        ranked = sorted(
            [(n.view.deadline, n.arrival, i, n) for i, n in enumerate(members)]
        )  # within a group urgency is the same: the order of `OpenNeed.priority`
        for turn, (deadline, arrival, _, need) in enumerate(ranked):
            if id(need) in picked:
                keyed.append((urgency, week, turn, deadline, arrival, need))
    keyed.sort(key=lambda k: k[:5])
    return [k[-1] for k in keyed]


def serve_volunteer(state: MatcherState, vol: Volunteer, d: Decisions, now: datetime) -> None:
    if vol.pledge.across:
        shelves = [s for s in state.unfilled if s != MONEY_SHELF]
    else:
        shelves = [f"shift:{vol.pledge.home.district}"]
    pledge = vol.pledge
    for need in open_needs(state, now, shelves, lambda n: view_fits(n.view, pledge)):
        kept = kept_for(need, now, state.policy.reserve_horizon, state.policy.urgent_hours_percent)
        if volunteer_fits(need, vol, kept):
            book_volunteer(state, d, need, vol)


def serve_fund(state: MatcherState, fund: Fund, d: Decisions, now: datetime) -> None:
    for need in open_needs(state, now, [MONEY_SHELF], lambda n: fund_may_pay(n, fund.spec, now)):
        share = fund_share(need, fund, now, state.policy.reserve_horizon)
        if share > 0:
            reserve_fund(state, d, need, fund, share)


# ---- supply goes back ----


def release(
    state: MatcherState, d: Decisions, p: Proposal, reason: str, no_show: bool = False
) -> None:
    """Give a proposal's supply back (to its owner, when another partition holds it) and
    reopen its part of the need."""
    need = state.needs[p.need_id]
    if p.hold_id is not None:
        assert p.owner_partition is not None
        supply_id = p.volunteer_id or p.fund_id
        assert supply_id is not None
        released = SupplyReleased(
            hold_id=p.hold_id, supply_id=supply_id, reason=reason, no_show=no_show
        )
        d.send(released, p.owner_partition, "release", f"hold:{p.hold_id}:need", 2)
        listing = state.listings.get(supply_id)
        if listing is not None:
            listing.held -= 1 if p.supply is SupplyKind.VOLUNTEER else p.quantity
    if p.supply is SupplyKind.VOLUNTEER:
        assert p.volunteer_id is not None
        vol = state.volunteers.get(p.volunteer_id)
        if vol is not None and p.hold_id is None:
            vol.booked.pop(p.match_id, None)
        need.remaining += 1
    else:
        assert p.fund_id is not None
        if p.hold_id is None:
            state.funds[p.fund_id].available += p.quantity
        need.remaining += p.quantity
        need.from_funds[p.fund_id] -= p.quantity
    mark_unfilled(state, need)


def withdraw(state: MatcherState, d: Decisions, p: Proposal, reason: str) -> None:
    release(state, d, p, reason)
    p.status = "withdrawn"
    d.about(p, MatchWithdrawn(match_id=p.match_id, need_id=p.need_id, reason=reason), "withdrawal")


def active(
    state: MatcherState,
    need_id: uuid.UUID | None = None,
    volunteer_id: uuid.UUID | None = None,
    fund_id: uuid.UUID | None = None,
) -> list[Proposal]:
    """Active proposals of one need, volunteer or fund (or all), newest first."""
    if need_id is not None:
        pool: Iterable[Proposal] = state.by_need.get(need_id, [])
    elif volunteer_id is not None:
        pool = state.by_volunteer.get(volunteer_id, [])
    elif fund_id is not None:
        pool = state.by_fund.get(fund_id, [])
    else:
        pool = state.proposals.values()
    return list(reversed([p for p in pool if p.status in ACTIVE]))
