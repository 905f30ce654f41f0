"""What each kind of input does: needs posted, amended and cancelled; supply pledged,
donated and withdrawn; answers and confirmations; clock ticks."""

from __future__ import annotations

import heapq
import sys
import uuid
from datetime import datetime

from schemas.envelope import Envelope
from schemas.messages import (
    AcceptMatch,
    ConfirmMatch,
    DeclineMatch,
    DonationReceived,
    DonationRefunded,
    FundOpened,
    FundReserveSet,
    MatchAccepted,
    MatchCompleted,
    MatchDeclined,
    MatchExpired,
    Message,
    NeedAmended,
    NeedCancelled,
    NeedPosted,
    NoShowRecorded,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    RecordNoShow,
    SupplyKind,
)
from services.domain.matching.across import holds_of, revoke
from services.domain.matching.decisions import Decisions
from services.domain.matching.reserve import release_reserves, watch_fund, watch_horizon
from services.domain.matching.serve import (
    active,
    fair_order,
    mark_unfilled,
    release,
    serve_fund,
    serve_need,
    serve_volunteer,
    withdraw,
)
from services.domain.matching.state import (
    ACTIVE,
    Fund,
    MatcherState,
    OpenNeed,
    Proposal,
    Volunteer,
    watch,
)
from services.domain.matching.views import NeedView, PledgeView, minutes_of
from services.domain.needs import need_quantity
from services.domain.zones import need_zone

# ---- the inputs ----


def on_need(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    now, payload = event.recorded_at, event.payload
    if isinstance(payload, NeedPosted):
        need = OpenNeed(
            payload.need_id,
            payload.need,
            sys.intern(event.actor.org_id),  # a community posts many needs
            state.arrivals,
            need_quantity(payload.need)[0],
            zone=sys.intern(need_zone(payload.need)),
        )
        state.needs[need.need_id] = need
        mark_unfilled(state, need)
        watch_horizon(state, need)
        serve_need(state, need, d, now)
    elif isinstance(payload, NeedCancelled) and payload.need_id in state.needs:
        need = state.needs[payload.need_id]
        for p in active(state, need_id=need.need_id):
            withdraw(state, d, p, "the need was cancelled")
        need.cancelled = True
    elif isinstance(payload, NeedAmended) and payload.need_id in state.needs:
        need = state.needs[payload.need_id]
        amended = NeedView.of(payload.need)
        moved = amended.shift != need.view.shift
        for p in active(state, need_id=need.need_id):
            if moved and p.supply is SupplyKind.VOLUNTEER:
                withdraw(state, d, p, "the shift changed")
        held = need.view.quantity - need.remaining
        need.view = amended
        need.remaining = amended.quantity - held
        for p in active(state, need_id=need.need_id):  # the deadline may have moved earlier
            watch(state, p)
        watch_horizon(state, need)
        mark_unfilled(state, need)
        for p in active(state, need_id=need.need_id):  # newest first
            if need.remaining >= 0:
                break
            withdraw(state, d, p, "the need now asks for less")
        serve_need(state, need, d, now)


def on_supply(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    now, payload = event.recorded_at, event.payload
    if isinstance(payload, PledgeMade):
        vol = Volunteer(payload.volunteer_id, PledgeView.of(payload.pledge), state.arrivals)
        state.volunteers[vol.volunteer_id] = vol
        state.index_volunteer(vol)
        serve_volunteer(state, vol, d, now)
    elif isinstance(payload, PledgeAmended) and payload.volunteer_id in state.volunteers:
        vol = state.volunteers[payload.volunteer_id]
        old_district = vol.pledge.home.district
        vol.pledge = PledgeView.of(payload.pledge)
        state.index_volunteer(vol, old_district)
        serve_volunteer(state, vol, d, now)
    elif isinstance(payload, PledgeWithdrawn) and payload.volunteer_id in state.volunteers:
        vol = state.volunteers[payload.volunteer_id]
        vol.withdrawn = True
        for p in active(state, volunteer_id=vol.volunteer_id):
            if p.status == "proposed":  # accepted shifts end through the match lifecycle
                withdraw(state, d, p, "the volunteer withdrew their pledge")
                serve_need(state, state.needs[p.need_id], d, now)
        for hold in holds_of(state, vol.volunteer_id):
            revoke(d, hold, "the volunteer withdrew their pledge")
    elif isinstance(payload, FundOpened):
        percent = payload.urgent_reserve_percent
        fund = Fund(payload.fund_id, payload.fund, state.arrivals, reserve_percent=percent)
        state.open_fund(fund)
        state.note_reserve(fund.fund_id, percent)
        watch_fund(state, fund)
    elif isinstance(payload, FundReserveSet) and payload.fund_id in state.funds:
        # The foundation's new share holds from now on: nothing proposed is withdrawn when it
        # grows (only money not yet promised is held back), and what a smaller share frees is
        # offered at once to the needs it was kept from.
        fund = state.funds[payload.fund_id]
        freed = payload.urgent_reserve_percent < fund.reserve_percent
        fund.reserve_percent = payload.urgent_reserve_percent
        state.note_reserve(fund.fund_id, fund.reserve_percent)
        if freed and fund.available > 0:
            serve_fund(state, fund, d, now)
    elif isinstance(payload, DonationReceived) and payload.fund_id in state.funds:
        fund = state.funds[payload.fund_id]
        fund.available += payload.donation.amount.amount_minor
        fund.received += payload.donation.amount.amount_minor
        serve_fund(state, fund, d, now)
    elif isinstance(payload, DonationRefunded) and payload.fund_id in state.funds:
        fund = state.funds[payload.fund_id]
        fund.available -= payload.amount.amount_minor
        fund.received -= payload.amount.amount_minor
        for p in active(state, fund_id=fund.fund_id):  # never leave the fund over-spent
            if fund.available >= 0:
                break
            if p.status == "proposed":
                withdraw(state, d, p, "the fund refunded a donation")
        deficit = -fund.available
        for hold in reversed(holds_of(state, fund.fund_id)):  # newest first
            if deficit <= 0:
                break
            revoke(d, hold, "the fund refunded a donation")
            deficit -= hold.quantity


def on_answer(state: MatcherState, event: Envelope[Message], d: Decisions) -> None:
    """A volunteer's answer or a community's confirmation about one match."""
    now, cmd, actor = event.recorded_at, event.payload, event.actor.org_id
    assert isinstance(cmd, AcceptMatch | DeclineMatch | ConfirmMatch | RecordNoShow)
    p = state.proposals.get(cmd.match_id)
    if p is None:
        d.refuse("no match has this id", "match_id")
        return
    need = state.needs[p.need_id]
    if isinstance(cmd, AcceptMatch | DeclineMatch):
        if p.supply is not SupplyKind.VOLUNTEER or actor != str(p.volunteer_id):
            d.refuse("only the volunteer it was proposed to may answer a shift", "match_id")
        elif isinstance(cmd, AcceptMatch) and p.status == "proposed":
            p.status = "accepted"
            d.about(p, MatchAccepted(match_id=p.match_id, need_id=p.need_id), "decided")
        elif isinstance(cmd, DeclineMatch) and p.status in ACTIVE:
            release(state, d, p, "the volunteer declined")
            p.status = "declined"
            d.about(
                p,
                MatchDeclined(match_id=p.match_id, need_id=p.need_id, reason=cmd.reason),
                "decided",
            )
            serve_need(state, need, d, now)
        else:
            d.refuse(f"the match is {p.status}", "match_id")
        return
    if actor != need.owner:
        d.refuse("only the community that posted the need may confirm it", "match_id")
    elif p.status not in ACTIVE:
        d.refuse(f"the match is {p.status}", "match_id")
    elif isinstance(cmd, RecordNoShow):
        if p.supply is not SupplyKind.VOLUNTEER:
            d.refuse("a no-show is recorded for a volunteer's shift", "match_id")
            return
        release(state, d, p, "the volunteer did not come", no_show=True)
        p.status = "no_show"
        assert p.volunteer_id is not None
        if p.hold_id is None:  # otherwise the owner counts it, on SupplyReleased
            state.volunteers[p.volunteer_id].no_shows += 1
        d.about(
            p,
            NoShowRecorded(match_id=p.match_id, need_id=p.need_id, volunteer_id=p.volunteer_id),
            "decided",
        )
        if p.shift is not None and now < p.shift[1]:  # time still allows someone else
            serve_need(state, need, d, now)
    else:
        _complete(p, cmd, d)


def _complete(p: Proposal, cmd: ConfirmMatch, d: Decisions) -> None:
    if p.supply is SupplyKind.VOLUNTEER:
        assert p.shift is not None
        minutes = minutes_of(*p.shift)
        if cmd.minutes_served is None or cmd.minutes_served > minutes:
            d.refuse(
                f"minutes_served must be between 1 and the shift's {minutes}",
                "minutes_served",
            )
            return
        done = MatchCompleted(
            match_id=p.match_id, need_id=p.need_id, minutes_served=cmd.minutes_served
        )
    else:
        got = cmd.amount_received
        if got is None or got.amount_minor != p.quantity:
            d.refuse(
                f"amount_received must equal the {p.quantity} minor units reserved",
                "amount_received",
            )
            return
        done = MatchCompleted(match_id=p.match_id, need_id=p.need_id, amount=got)
    p.status = "completed"
    d.about(p, done, "decided")


def on_tick(state: MatcherState, at: datetime, d: Decisions) -> None:
    """Time passed: unanswered shifts expire (the next candidate is asked) and needs past their
    deadline give back what they hold unconfirmed. Proposals are handled newest first."""
    due: dict[uuid.UUID, Proposal] = {}
    while state.due and state.due[0][0] <= at:
        _, _, match_id = heapq.heappop(state.due)
        p = state.proposals[match_id]
        if p.status == "proposed":
            due[match_id] = p
    reopened: dict[uuid.UUID, OpenNeed] = {}
    for p in sorted(due.values(), key=lambda p: -p.order):
        need = state.needs[p.need_id]
        if need.view.deadline <= at:
            withdraw(state, d, p, "the need's deadline passed")
        elif (
            p.supply is SupplyKind.VOLUNTEER
            and p.proposed_at is not None
            and p.proposed_at + state.policy.proposal_ttl <= at
        ):
            release(state, d, p, "the proposal expired unanswered")
            p.status = "expired"
            d.about(p, MatchExpired(match_id=p.match_id, need_id=p.need_id), "expiry")
            reopened[need.need_id] = need
        else:  # the deadline moved later since it was filed
            watch(state, p)
    for need in fair_order(reopened.values()):
        serve_need(state, need, d, at)
    release_reserves(state, at, d)
