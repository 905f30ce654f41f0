"""Across partitions: listings of supply owned elsewhere, requests for it, and the
owner's replies (see schemas.reservations and docs/matching.md)."""

from __future__ import annotations

import uuid
from datetime import datetime

from schemas.common import Money, NeedKind
from schemas.envelope import Envelope, derive_id
from schemas.messages import (
    Message,
    SupplyKind,
)
from schemas.reservations import (
    SupplyGranted,
    SupplyListed,
    SupplyRefused,
    SupplyReleased,
    SupplyRequested,
    SupplyRevoked,
)
from services.domain.matching.decisions import Decisions
from services.domain.matching.fit import (
    fund_may_pay,
    fund_share,
    kept_for,
    reserve_holds,
    view_fits,
    volunteer_fits,
)
from services.domain.matching.serve import (
    MONEY_SHELF,
    mark_unfilled,
    open_needs,
    serve_fund,
    serve_need,
    serve_volunteer,
    withdraw,
)
from services.domain.matching.state import Ask, Hold, Listing, MatcherState, OpenNeed
from services.domain.matching.views import PledgeView, minutes_of, time_window

# ---- across partitions: listings, requests and replies ----


def holds_of(state: MatcherState, supply_id: uuid.UUID) -> list[Hold]:
    """Holds on this supply lent to other partitions and not yet asked back, oldest first."""
    return [h for h in state.holds.values() if h.supply_id == supply_id and not h.revoked]


def revoke(d: Decisions, hold: Hold, reason: str) -> None:
    hold.revoked = True
    revoked = SupplyRevoked(hold_id=hold.hold_id, need_id=hold.need_id, reason=reason)
    d.send(revoked, hold.partition, "revoke", f"hold:{hold.hold_id}:supply", 2)


def _listing_fits(state: MatcherState, need: OpenNeed, listing: Listing) -> bool:
    """Whether a volunteer listed from elsewhere is worth asking for this need."""
    if not listing.active or listing.pledge is None:
        return False
    if listing.in_flight >= state.policy.asks_in_flight_per_volunteer:
        return False
    if listing.refused_in_row >= state.policy.refusals_before_rest:
        return False
    if not view_fits(need.view, listing.pledge):
        return False
    if need.volunteers and listing.supply_id in need.volunteers:
        return False
    return not need.refused or need.refused.get(listing.supply_id) != listing.version


def _listing_share(
    state: MatcherState, need: OpenNeed, listing: Listing, now: datetime, budget: int
) -> int:
    """How much to ask a fund listed from elsewhere for (0: do not ask)."""
    spec, currency = listing.fund, need.view.currency
    if not listing.active or spec is None or currency is None or currency != spec.currency:
        return 0
    if state.exhausted.get(listing.supply_id) == listing.version:
        return 0
    if need.refused.get(listing.supply_id) == listing.version:
        return 0
    if not spec.allows(need.view.category, need.view.place.district, now):
        return 0
    if reserve_holds(need, spec.valid_until, now, state.policy.reserve_horizon):
        # the owner keeps its reserve from this need: ask only for what lies beyond it
        budget -= max(listing.net_minor, 0) * listing.reserve_percent // 100
    share = min(need.remaining, budget)
    if spec.cap_per_need is not None:
        share = min(
            share, spec.cap_per_need.amount_minor - need.from_funds.get(listing.supply_id, 0)
        )
    return max(share, 0)


def _ask(
    state: MatcherState, d: Decisions, need: OpenNeed, listing: Listing, quantity: int
) -> None:
    """Set `quantity` of the need aside and ask the supply's owner to hold it."""
    hold_id = derive_id(d.cause.event_id, f"hold/{len(d.out)}")
    state.asks[hold_id] = Ask(
        need.need_id,
        listing.supply,
        listing.supply_id,
        quantity,
        listing.owner_partition,
        need.view.shift,
    )
    need.remaining -= quantity
    if listing.supply is SupplyKind.VOLUNTEER:
        need.volunteers.add(listing.supply_id)
        listing.in_flight += 1
    else:
        need.from_funds[listing.supply_id] = need.from_funds.get(listing.supply_id, 0) + quantity
        listing.in_flight += quantity
    request = SupplyRequested(
        hold_id=hold_id,
        need_id=need.need_id,
        need=need.view.spec(),
        need_zone=need.zone,
        from_partition=state.partition,
        supply=listing.supply,
        supply_id=listing.supply_id,
        quantity=quantity,
    )
    d.send(request, listing.owner_partition, "request", f"hold:{hold_id}:need", 1)


def ask_elsewhere(state: MatcherState, need: OpenNeed, d: Decisions, now: datetime) -> None:
    """After local supply: ask owners elsewhere, in the same order of preference."""
    if need.view.kind is NeedKind.VOLUNTEER_HOURS:
        # Those worth asking, in order of arrival: the same as testing each listing in that
        # order, since asking one changes only that listing and that volunteer's place here.
        worth = [v for v in state.listed_for(need) if _listing_fits(state, need, v)]
        worth.sort(key=lambda v: v.arrival)
        for listing in worth:
            if need.remaining <= 0:
                break
            if listing.supply_id not in need.volunteers:
                _ask(state, d, need, listing, 1)
        return
    exhausted = state.exhausted
    for listing in state.funds_listed():
        if need.remaining <= 0:
            break
        budget = listing.budget()
        # nothing to ask for: no budget left, or refused at this version (as _listing_share)
        if budget <= 0 or exhausted.get(listing.supply_id) == listing.version:
            continue
        share = _listing_share(state, need, listing, now, budget)
        if share > 0:
            _ask(state, d, need, listing, share)


def on_listed(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """Supply owned elsewhere appeared or changed: open needs here may ask for it."""
    now, msg = event.recorded_at, event.payload
    assert isinstance(msg, SupplyListed)
    known = state.listings.get(msg.supply_id)
    if known is not None and known.version >= msg.version:
        return  # an older description arriving late changes nothing
    listing = Listing(
        msg.supply,
        msg.supply_id,
        msg.owner_partition,
        msg.version,
        msg.active,
        known.arrival if known else state.arrivals,
        None if msg.pledge is None else PledgeView.of(msg.pledge),
        msg.fund,
        msg.net_minor,
        reserve_percent=msg.urgent_reserve_percent,
        in_flight=known.in_flight if known else 0,
        held=known.held if known else 0,
    )
    state.index_listing(listing)
    if listing.fund is not None:
        state.note_reserve(listing.supply_id, listing.reserve_percent if listing.active else 0)
    if not listing.active:
        return
    if listing.pledge is not None:
        if listing.pledge.across:
            shelves = [s for s in state.unfilled if s != MONEY_SHELF]
        else:
            shelves = [f"shift:{listing.pledge.home.district}"]
        asked = 0
        pledge = listing.pledge
        for need in open_needs(state, now, shelves, lambda n: view_fits(n.view, pledge)):
            if asked >= state.policy.asks_per_listing:
                break
            if _listing_fits(state, need, listing):
                _ask(state, d, need, listing, 1)
                asked += 1
        return
    fund = listing.fund

    def may_pay(need: OpenNeed) -> bool:
        return fund is not None and fund_may_pay(need, fund, now)

    for need in open_needs(state, now, [MONEY_SHELF], may_pay):
        if listing.budget() <= 0:
            break
        share = _listing_share(state, need, listing, now, listing.budget())
        if share > 0:
            _ask(state, d, need, listing, share)


def on_requested(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """Another partition asks for supply this partition owns: hold it, or say why not."""
    now, req = event.recorded_at, event.payload
    assert isinstance(req, SupplyRequested)
    probe = OpenNeed(req.need_id, req.need, "", 0, req.quantity)
    granted, reason = 0, "the supply is not known here"
    if req.supply is SupplyKind.VOLUNTEER:
        vol = state.volunteers.get(req.supply_id)
        if vol is not None and req.need.shift is not None:
            policy = state.policy
            kept = kept_for(probe, now, policy.reserve_horizon, policy.urgent_hours_percent)
            if volunteer_fits(probe, vol, kept):
                assert probe.view.slot is not None
                vol.booked[req.hold_id] = probe.view.slot
                granted = 1
            else:
                reason = "the volunteer's pledge, calendar or weekly limit no longer fits"
    else:
        fund = state.funds.get(req.supply_id)
        if fund is not None:
            granted = fund_share(probe, fund, now, state.policy.reserve_horizon)
            fund.available -= granted
            reason = "the fund has nothing left that its earmarks allow for this need"
    if granted <= 0:
        refused = SupplyRefused(
            hold_id=req.hold_id, need_id=req.need_id, supply_id=req.supply_id, reason=reason
        )
        d.send(refused, req.from_partition, "refusal", f"hold:{req.hold_id}:supply", 1)
        return
    state.holds[req.hold_id] = Hold(
        req.hold_id, req.need_id, req.supply, req.supply_id, granted, req.from_partition
    )
    grant = SupplyGranted(
        hold_id=req.hold_id,
        need_id=req.need_id,
        supply=req.supply,
        supply_id=req.supply_id,
        quantity=granted,
    )
    d.send(grant, req.from_partition, "grant", f"hold:{req.hold_id}:supply", 1)


def _undo_ask(need: OpenNeed, ask: Ask, quantity: int) -> None:
    need.remaining += quantity
    if ask.supply is SupplyKind.VOLUNTEER:
        need.volunteers.discard(ask.supply_id)
    else:
        need.from_funds[ask.supply_id] -= quantity


def on_answered(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """The owner answered a request: propose what it holds, or ask someone else."""
    now, msg = event.recorded_at, event.payload
    assert isinstance(msg, SupplyGranted | SupplyRefused)
    ask = state.asks.pop(msg.hold_id, None)
    if ask is None:
        return
    need = state.needs[ask.need_id]
    unit = 1 if ask.supply is SupplyKind.VOLUNTEER else None
    known = state.listings.get(ask.supply_id)
    if known is not None:
        known.in_flight -= unit or ask.quantity
    if isinstance(msg, SupplyRefused):
        _undo_ask(need, ask, ask.quantity)
        listing = state.listings.get(ask.supply_id)
        need.refused[ask.supply_id] = listing.version if listing else 0
        fund = listing.fund if listing else None
        horizon = state.policy.reserve_horizon
        held = (
            listing is not None
            and listing.reserve_percent > 0
            and fund is not None
            and reserve_holds(need, fund.valid_until, now, horizon)
        )
        if ask.supply is SupplyKind.FUND and not held:
            # a refusal while the reserve held says nothing of what urgent needs may have
            state.exhausted[ask.supply_id] = listing.version if listing else 0
        elif listing is not None:
            listing.refused_in_row += 1
        mark_unfilled(state, need)
        serve_need(state, need, d, now)
        return
    unwanted = None
    if need.cancelled:
        unwanted = "the need was cancelled"
    elif need.view.deadline <= now:
        unwanted = "the need's deadline passed"
    elif ask.supply is SupplyKind.VOLUNTEER and need.view.shift != ask.shift:
        unwanted = "the shift changed"
    elif need.remaining < 0:
        unwanted = "the need now asks for less"
    if unwanted is not None:
        _undo_ask(need, ask, ask.quantity)
        released = SupplyReleased(hold_id=msg.hold_id, supply_id=ask.supply_id, reason=unwanted)
        d.send(released, ask.owner_partition, "release", f"hold:{msg.hold_id}:need", 2)
        return
    granted = min(msg.quantity, ask.quantity)
    if known is not None:
        known.held += unit or granted
        known.refused_in_row = 0
    _undo_ask(need, ask, ask.quantity - granted)
    if ask.supply is SupplyKind.VOLUNTEER:
        assert ask.shift is not None
        fields: dict[str, object] = {
            "supply": SupplyKind.VOLUNTEER,
            "volunteer_id": ask.supply_id,
            "shift": time_window(ask.shift),
            "minutes": minutes_of(*ask.shift),
        }
        rule = "skills, availability, travel and weekly limit fit (held by its owner)"
    else:
        listing = state.listings[ask.supply_id]
        assert listing.fund is not None
        fields = {
            "supply": SupplyKind.FUND,
            "fund_id": ask.supply_id,
            "amount": Money(amount_minor=granted, currency=listing.fund.currency),
        }
        rule = "fund earmarks allow this category, district and period (held by its owner)"
    d.propose(state, need, fields, rule, hold=(msg.hold_id, ask.owner_partition))
    if granted < ask.quantity:
        serve_need(state, need, d, now)


def on_returned(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """A hold comes back (released by the need's owner), or is asked back (revoked)."""
    now, msg = event.recorded_at, event.payload
    if isinstance(msg, SupplyRevoked):
        p = state.by_hold.get(msg.hold_id)
        if p is not None and p.status == "proposed":  # accepted or confirmed: it stays
            withdraw(state, d, p, msg.reason)
            serve_need(state, state.needs[p.need_id], d, now)
        return
    assert isinstance(msg, SupplyReleased)
    hold = state.holds.pop(msg.hold_id, None)
    if hold is None:
        return
    if hold.supply is SupplyKind.VOLUNTEER:
        vol = state.volunteers[hold.supply_id]
        vol.booked.pop(hold.hold_id, None)
        vol.no_shows += int(msg.no_show)
        if not vol.withdrawn:
            serve_volunteer(state, vol, d, now)
    else:
        fund = state.funds[hold.supply_id]
        fund.available += hold.quantity
        if fund.available > 0:
            serve_fund(state, fund, d, now)
