"""Building the matcher's input: which partition of matcher.inputs each event goes to.

Pure: the router's adapter feeds it decoded events and writes what it returns. An event goes,
with its own bytes and id, to the partition that owns what it is about (services.domain.zones).
Besides, the router tells other partitions about supply they might use (`SupplyListed`), fans
each clock tick out to every partition, and holds a volunteer's or community's answer until it
knows which partition owns the match.

The router's own order is not replayed by anyone: matcher.inputs, as written, is the log the
matcher's decisions are a function of.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from schemas.envelope import Envelope
from schemas.messages import (
    AcceptMatch,
    ClockTicked,
    ConfirmMatch,
    DeclineMatch,
    DonationReceived,
    DonationRefunded,
    FundOpened,
    FundReserveSet,
    MatchProposed,
    Message,
    NeedAmended,
    NeedCancelled,
    NeedPosted,
    PledgeAmended,
    PledgeMade,
    PledgeWithdrawn,
    RecordNoShow,
    SupplyKind,
)
from schemas.reservations import SupplyListed
from schemas.specs import FundSpec, PledgeSpec
from services.domain.outputs import derived
from services.domain.zones import (
    clock_zone,
    fund_reach,
    fund_zone,
    need_zone,
    partition_of,
    reachable_partitions,
    volunteer_reach,
    volunteer_zone,
)

Answer = AcceptMatch | DeclineMatch | ConfirmMatch | RecordNoShow


@dataclass(frozen=True)
class Routed:
    """One message for matcher.inputs: the input itself (`original`), or one the router made."""

    partition: int
    zone: str
    envelope: Envelope[Message]
    original: bool


@dataclass
class Supply:
    """What the router knows of one fund or volunteer, to describe it to other partitions."""

    zone: str
    version: int = 0
    listed_on: set[int] = field(default_factory=set)
    pledge: PledgeSpec | None = None
    fund: FundSpec | None = None
    net_minor: int = 0
    reserve_percent: int = 0
    active: bool = True


@dataclass
class RoutingState:
    """Sticky owners of needs and supply, what each partition was told, and waiting answers."""

    partitions: int
    needs: dict[uuid.UUID, str] = field(default_factory=dict)
    supply: dict[uuid.UUID, Supply] = field(default_factory=dict)
    matches: dict[uuid.UUID, str] = field(default_factory=dict)
    waiting: dict[uuid.UUID, list[Envelope[Message]]] = field(default_factory=dict)
    """Answers about matches whose proposal the router has not seen yet, by match id."""

    def owner(self, zone: str) -> int:
        return partition_of(zone, self.partitions)


def route(state: RoutingState, event: Envelope[Message]) -> list[Routed]:
    """Where `event` goes on matcher.inputs, with what else it causes there (may be nothing)."""
    p = event.payload
    if isinstance(p, MatchProposed):
        state.matches[p.match_id] = p.zone
        return [_forward(state, e, p.zone) for e in state.waiting.pop(p.match_id, [])]
    if isinstance(p, AcceptMatch | DeclineMatch | ConfirmMatch | RecordNoShow):
        zone = state.matches.get(p.match_id)
        if zone is None:
            state.waiting.setdefault(p.match_id, []).append(event)
            return []
        return [_forward(state, event, zone)]
    if isinstance(p, ClockTicked):
        return [_tick(event, n) for n in range(state.partitions)]
    if isinstance(p, NeedPosted):
        zone = state.needs.setdefault(p.need_id, need_zone(p.need))
        return [_forward(state, event, zone)]
    if isinstance(p, NeedAmended | NeedCancelled):
        zone = state.needs.get(p.need_id)
        return [] if zone is None else [_forward(state, event, zone)]
    if isinstance(p, PledgeMade | PledgeAmended | PledgeWithdrawn):
        return _volunteer(state, event)
    if isinstance(p, FundOpened | FundReserveSet | DonationReceived | DonationRefunded):
        return _fund(state, event)
    return []


def _forward(state: RoutingState, event: Envelope[Message], zone: str) -> Routed:
    return Routed(state.owner(zone), zone, event, original=True)


def _tick(event: Envelope[Message], partition: int) -> Routed:
    """Each partition gets its own copy of a tick (ids differ, so each is archived)."""
    copy = derived(
        event,
        event.payload,
        label=f"partition/{partition}",
        stream_id=clock_zone(partition),
        stream_seq=0,
    )
    return Routed(partition, clock_zone(partition), copy, original=False)


def _volunteer(state: RoutingState, event: Envelope[Message]) -> list[Routed]:
    p = event.payload
    assert isinstance(p, PledgeMade | PledgeAmended | PledgeWithdrawn)
    known = state.supply.get(p.volunteer_id)
    if isinstance(p, PledgeMade | PledgeAmended):
        if known is None:
            known = state.supply[p.volunteer_id] = Supply(volunteer_zone(p.pledge))
        known.pledge, known.active = p.pledge, True
        reach = reachable_partitions(volunteer_reach(p.pledge), state.partitions)
    elif known is None:
        return []
    else:
        known.active, reach = False, set()
    out = [_forward(state, event, known.zone)]
    return out + _list(state, event, p.volunteer_id, known, reach, SupplyKind.VOLUNTEER)


def _fund(state: RoutingState, event: Envelope[Message]) -> list[Routed]:
    p = event.payload
    assert isinstance(p, FundOpened | FundReserveSet | DonationReceived | DonationRefunded)
    known = state.supply.get(p.fund_id)
    if isinstance(p, FundOpened):
        if known is not None:
            return [_forward(state, event, known.zone)]
        known = state.supply[p.fund_id] = Supply(
            fund_zone(p.fund_id, p.fund),
            fund=p.fund,
            reserve_percent=p.urgent_reserve_percent,
        )
    elif known is None:
        return []  # money for a fund never opened: the matcher has nothing to hold it in
    elif isinstance(p, FundReserveSet):
        known.reserve_percent = p.urgent_reserve_percent
    elif isinstance(p, DonationReceived):
        known.net_minor += p.donation.amount.amount_minor
    else:
        known.net_minor = max(known.net_minor - p.amount.amount_minor, 0)
    assert known.fund is not None
    reach = reachable_partitions(fund_reach(known.fund), state.partitions)
    out = [_forward(state, event, known.zone)]
    return out + _list(state, event, p.fund_id, known, reach, SupplyKind.FUND)


def _list(
    state: RoutingState,
    event: Envelope[Message],
    supply_id: uuid.UUID,
    known: Supply,
    reach: set[int],
    kind: SupplyKind,
) -> list[Routed]:
    """Describe the supply to every partition it could serve but does not own, and tell the
    ones it no longer reaches that it is gone."""
    owner = state.owner(known.zone)
    targets = sorted((reach | known.listed_on) - {owner})
    if not targets:
        return []
    known.version += 1
    out = []
    for n in targets:
        active = known.active and n in reach
        listing = SupplyListed(
            supply=kind,
            supply_id=supply_id,
            owner_partition=owner,
            version=known.version,
            active=active,
            pledge=known.pledge,
            fund=known.fund,
            net_minor=known.net_minor,
            urgent_reserve_percent=known.reserve_percent,
        )
        copy = derived(
            event,
            listing,
            label=f"listing/{n}",
            stream_id=f"listing:{supply_id}:{n}",
            stream_seq=known.version,
        )
        out.append(Routed(n, known.zone, copy, original=False))
    known.listed_on = {n for n in targets if known.active and n in reach}
    return out
