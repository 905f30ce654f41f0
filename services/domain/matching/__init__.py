"""The matcher's policy: which supply meets which need, and the life of each proposal, decided
from the ordered input alone.

Every decision is a pure function of the logged input order; "now" is the `recorded_at` of the
triggering event, never a clock read.

Ownership (services.domain.zones): each partition of matcher.inputs has its own `MatcherState`
and alone decides on the needs, funds and volunteers it owns. Supply another partition owns is
known here only as a listing; a need asks for it with `SupplyRequested` and the owner answers
on the log (schemas.reservations). With one partition, everything is local and no request is
ever made.
"""

from __future__ import annotations

from schemas.envelope import Envelope
from schemas.messages import (
    AcceptMatch,
    ClockTicked,
    ConfirmMatch,
    DeclineMatch,
    Message,
    NeedAmended,
    NeedCancelled,
    NeedPosted,
    RecordNoShow,
)
from schemas.reservations import (
    SupplyGranted,
    SupplyListed,
    SupplyRefused,
    SupplyReleased,
    SupplyRequested,
    SupplyRevoked,
)
from services.domain.matching.across import on_answered, on_listed, on_requested, on_returned
from services.domain.matching.decisions import Decisions
from services.domain.matching.fit import (
    distance_rank,
    fund_share,
    pledge_fits,
    travel_reaches,
    volunteer_fits,
)
from services.domain.matching.inputs import on_answer, on_need, on_supply, on_tick
from services.domain.matching.serve import fair_order
from services.domain.matching.state import (
    DEFAULT_POLICY,
    URGENT_FUND_RESERVE_PERCENT,
    URGENT_RESERVES,
    Fund,
    MatcherState,
    OpenNeed,
    Policy,
    Proposal,
    Volunteer,
    local_week,
)
from services.domain.matching.vet import vet

__all__ = [
    "DEFAULT_POLICY",
    "URGENT_FUND_RESERVE_PERCENT",
    "URGENT_RESERVES",
    "Decisions",
    "Fund",
    "MatcherState",
    "OpenNeed",
    "Policy",
    "Proposal",
    "Volunteer",
    "apply",
    "decide",
    "distance_rank",
    "fair_order",
    "fund_share",
    "local_week",
    "pledge_fits",
    "travel_reaches",
    "volunteer_fits",
]


def apply(state: MatcherState, event: Envelope[Message]) -> list[Envelope[Message]]:
    """Fold one input into the state and return the decisions it causes, in order."""
    return decide(state, event).out


def decide(state: MatcherState, event: Envelope[Message]) -> Decisions:
    """Fold one input into the state; the decisions it causes are `.out`, in order, and
    `.routes` names the partition of each request or reply meant for another partition.

    Raises `SetAside` (state untouched) for an input the policy cannot compute with."""
    key = event.event_id.int
    if key in state.seen:
        return Decisions(event)
    vet(event)
    state.seen.add(key)
    state.arrivals += 1
    d = Decisions(event)
    payload = event.payload
    if isinstance(payload, ClockTicked):
        on_tick(state, payload.at, d)
    elif isinstance(payload, NeedPosted | NeedCancelled | NeedAmended):
        on_need(state, event, d)
    elif isinstance(payload, AcceptMatch | DeclineMatch | ConfirmMatch | RecordNoShow):
        on_answer(state, event, d)
    elif isinstance(payload, SupplyListed):
        on_listed(state, event, d)
    elif isinstance(payload, SupplyRequested):
        on_requested(state, event, d)
    elif isinstance(payload, SupplyGranted | SupplyRefused):
        on_answered(state, event, d)
    elif isinstance(payload, SupplyReleased | SupplyRevoked):
        on_returned(state, event, d)
    else:
        on_supply(state, event, d)
    return d
