"""Reserves: the share of each fund held back for high and critical needs, and its release.

A fund's reserve (`Fund.reserve`, a share of its net donations its foundation sets:
`FundOpened.urgent_reserve_percent`, `FundReserveSet`) is a protection level: a low or normal
need takes only what the fund holds beyond it (`fit.fund_share`), high and critical needs take
from all of it. So money that waits is kept for the urgent needs that may still come, whatever
the order in which supply and needs arrive. The reserve stops holding against a need once the
need's deadline is `Policy.reserve_horizon` away, and against everyone once the fund's
`valid_until` is: from then on it is spent, and spent on the most urgent open need first
(`release_reserves`).

Time enters only as ticks: what falls due is kept in a heap (`MatcherState.horizons`), so a
replay releases the same money on the same tick."""

from __future__ import annotations

import heapq
from datetime import datetime, timedelta

from services.domain.matching.decisions import Decisions
from services.domain.matching.fit import URGENT, fund_may_pay, fund_share
from services.domain.matching.serve import (
    MONEY_SHELF,
    fair_order,
    open_needs,
    reserve_fund,
    serve_fund,
    serve_need,
)
from services.domain.matching.state import Fund, MatcherState, OpenNeed

RELEASED = timedelta(days=366_000)
"""A horizon no deadline is within: with it, no reserve holds (`fit.reserve_holds`)."""


def horizon_of(state: MatcherState, need: OpenNeed) -> datetime | None:
    """When reserves stop holding against a low or normal need: its deadline (money) or the
    start of its shift, less `Policy.reserve_horizon`; None when none ever holds. Every money
    need is watched, since a foundation may set a reserve on its fund at any time; the
    release skips it while no fund holds one (`release_reserves`)."""
    view, policy = need.view, state.policy
    if view.urgency >= URGENT:
        return None
    if view.shift is not None and policy.urgent_hours_percent:
        return view.shift[0] - policy.reserve_horizon
    if view.currency is not None:
        return view.deadline - policy.reserve_horizon
    return None


def watch_horizon(state: MatcherState, need: OpenNeed) -> None:
    """File when reserves stop holding against a low or normal need."""
    at = horizon_of(state, need)
    if at is not None:
        heapq.heappush(state.horizons, (at, need.arrival, need.need_id))


def watch_fund(state: MatcherState, fund: Fund) -> None:
    """File when a fund's whole reserve becomes free: its `valid_until` less the horizon (for
    every fund with an end: its foundation may set a reserve later)."""
    if fund.spec.valid_until is not None:
        at = fund.spec.valid_until - state.policy.reserve_horizon
        heapq.heappush(state.horizons, (at, fund.arrival, fund.fund_id))


def release_reserves(state: MatcherState, at: datetime, d: Decisions) -> None:
    """Reserves that stopped holding by `at`.

    Each need now within its horizon is served again, in the fair order, and may draw on the
    reserves: a shift on every volunteer's whole week; a money need on each fund's reserve, less
    what the waiting needs more urgent than it (a normal need, for a low one) that the fund may
    pay still want (`_release_to`). Then each fund past its own horizon is offered, whole, to
    the open needs in the fair order. An entry whose need has since moved its time is skipped
    (the amendment filed a new one), and so is a money need while no fund here or listed holds
    a reserve, and a fund that holds none (nothing was held back: there is nothing to free)."""
    due: list[OpenNeed] = []
    funds: list[Fund] = []
    while state.horizons and state.horizons[0][0] <= at:
        when, _, key = heapq.heappop(state.horizons)
        need = state.needs.get(key)
        if need is not None:
            held = need.view.shift is not None or bool(state.reserving)
            if held and horizon_of(state, need) == when and need.is_open(at):
                due.append(need)
        elif key in state.funds and state.funds[key].reserve_percent:
            funds.append(state.funds[key])
    if due:
        waiting = [n for n in open_needs(state, at, [MONEY_SHELF]) if n.view.urgency < URGENT]
        for need in fair_order(due):
            if need.view.shift is None:
                _release_to(state, need, waiting, at, d)
            else:
                serve_need(state, need, d, at)
    for fund in funds:
        if fund.available > 0:
            serve_fund(state, fund, d, at)


def _release_to(
    state: MatcherState, need: OpenNeed, waiting: list[OpenNeed], at: datetime, d: Decisions
) -> None:
    """Serve `need`, now within its horizon, from the reserves; but leave in each fund what
    the waiting needs more urgent than it, which the fund may pay, still want: they draw on it
    at their own horizon, or earlier if an urgent need does not come first."""
    above = [n for n in waiting if n.view.urgency > need.view.urgency and n.remaining > 0]
    if not above:
        serve_need(state, need, d, at)
        return
    for fund in state.funds_in_order():
        if need.remaining <= 0:
            break
        share = fund_share(need, fund, at, RELEASED)
        if share <= 0:
            continue
        kept = sum(n.remaining for n in above if fund_may_pay(n, fund.spec, at))
        take = min(share, fund.available - kept)
        if take > 0:
            reserve_fund(state, d, need, fund, take)
    if need.remaining > 0 and state.listings:
        serve_need(state, need, d, at)  # local funds gave what they could: ask elsewhere
