"""An in-process model of the partitioned matcher: the pure router and one `MatcherState` per
partition, with the log between them as queues that a seeded scheduler drains in any order.

Unit tests use it to show that ownership keeps every invariant whatever the interleaving of
partitions, and that each partition's logged input replays to byte-identical decisions.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from schemas.codec import encode
from schemas.envelope import Actor, Envelope, originate
from schemas.messages import (
    AcceptMatch,
    ClockTicked,
    DeclineMatch,
    MatchCompleted,
    MatchDeclined,
    MatchExpired,
    MatchProposed,
    MatchWithdrawn,
    Message,
    NoShowRecorded,
)
from schemas.specs import FundSpec, NeedSpec, PledgeSpec
from schemas.topics import MATCHER_INPUTS
from services.demo.city import generate
from services.domain.matching import MatcherState, decide, local_week
from services.domain.needs import need_quantity
from services.domain.routing import RoutingState, route
from services.matcher.processor import Router
from services.platform.kafka import Record, headers_for


def envelope(payload: Message, at: datetime, org: str, role: str = "system") -> Envelope[Message]:
    """A fresh input event recorded at `at`."""
    eid = uuid.uuid4()
    actor = Actor(org_id=org, role=role)
    return originate(
        payload, event_id=eid, at=at, actor=actor, stream_id=f"sim:{eid}", stream_seq=1
    )


@dataclass
class Run:
    """What a simulated run decided, and each partition's logged input."""

    decisions: list[Envelope[Message]] = field(default_factory=list)
    archived: list[Envelope[Message]] = field(default_factory=list)
    """Inputs and every decision (routed ones too) in an order the ledger could archive them
    in: an input when it is fed, a decision when it is decided, so always after its cause."""
    logs: dict[int, list[Envelope[Message]]] = field(default_factory=lambda: defaultdict(list))
    outputs: dict[int, list[Envelope[Message]]] = field(default_factory=lambda: defaultdict(list))


def simulate(
    events: list[Envelope[Message]],
    partitions: int,
    seed: int,
    answers: bool = False,
    tick_every: int = 0,
) -> Run:
    """Feed `events` through the router and the partitions, interleaved by a seeded scheduler.

    With `answers`, volunteers answer some proposals (accept or decline) as they appear; with
    `tick_every`, a clock tick follows every that many inputs (time moves one hour each)."""
    rng = random.Random(seed)
    router = RoutingState(partitions)
    states = {n: MatcherState(partition=n) for n in range(partitions)}
    queues: dict[int, deque[Envelope[Message]]] = {n: deque() for n in range(partitions)}
    inbox: deque[Envelope[Message]] = deque(events)
    run = Run()
    fed = 0
    last = events[0].recorded_at if events else datetime.now()

    def feed(event: Envelope[Message]) -> None:
        for r in route(router, event):
            queues[r.partition].append(r.envelope)

    while True:
        busy = [n for n in range(partitions) if queues[n]]
        if inbox and (not busy or rng.random() < 0.4):
            event = inbox.popleft()
            last = max(last, event.recorded_at)
            run.archived.append(event)
            feed(event)
            fed += 1
            if tick_every and fed % tick_every == 0:
                last += timedelta(hours=1)
                feed(envelope(ClockTicked(at=last), last, "clock"))
            continue
        if not busy:
            return run
        n = rng.choice(busy)
        event = queues[n].popleft()
        run.logs[n].append(event)
        d = decide(states[n], event)
        run.outputs[n].extend(d.out)
        run.archived.extend(d.out)
        for out in d.out:
            if out.event_id in d.routes:
                queues[d.routes[out.event_id]].append(out)
                continue
            run.decisions.append(out)
            if isinstance(out.payload, MatchProposed):
                feed(out)
                if answers and out.payload.volunteer_id is not None:
                    roll = rng.random()
                    vol = str(out.payload.volunteer_id)
                    mid = out.payload.match_id
                    if roll < 0.5:
                        inbox.append(envelope(AcceptMatch(match_id=mid), last, vol, "volunteer"))
                    elif roll < 0.7:
                        inbox.append(envelope(DeclineMatch(match_id=mid), last, vol, "volunteer"))


def replay(log: list[Envelope[Message]], partition: int) -> list[Envelope[Message]]:
    """Run one partition's logged input again from an empty state."""
    state = MatcherState(partition=partition)
    return [d for event in log for d in decide(state, event).out]


def check_invariants(
    decisions: list[Envelope[Message]],
    funds: dict[uuid.UUID, tuple[FundSpec, int]],
    needs: dict[uuid.UUID, NeedSpec],
    volunteers: dict[uuid.UUID, PledgeSpec],
) -> None:
    """Fold the decisions in order and fail at the first moment an invariant breaks."""
    active: dict[uuid.UUID, MatchProposed] = {}
    spent: dict[uuid.UUID, int] = defaultdict(int)
    filled: dict[uuid.UUID, int] = defaultdict(int)
    for d in decisions:
        p = d.payload
        if isinstance(p, MatchProposed):
            assert p.match_id not in active, f"match {p.match_id} proposed twice"
            active[p.match_id] = p
            need = needs[p.need_id]
            if p.fund_id is not None and p.amount is not None:
                spent[p.fund_id] += p.amount.amount_minor
                filled[p.need_id] += p.amount.amount_minor
                spec, donated = funds[p.fund_id]
                assert spent[p.fund_id] <= donated, f"fund {p.fund_id} over-spent"
                at = d.recorded_at
                assert spec.allows(need.category, need.place.district, at), "earmark broken"
            else:
                assert p.volunteer_id is not None and p.shift is not None
                filled[p.need_id] += 1
                mine = [
                    m.shift
                    for m in active.values()
                    if m.volunteer_id == p.volunteer_id and m.match_id != p.match_id
                ]
                assert not any(s is not None and s.overlaps(p.shift) for s in mine), (
                    f"volunteer {p.volunteer_id} double-booked"
                )
                week = local_week(p.shift.start)
                minutes = p.shift.minutes + sum(
                    s.minutes for s in mine if s is not None and local_week(s.start) == week
                )
                limit = volunteers[p.volunteer_id].weekly_hour_limit * 60
                assert minutes <= limit, f"volunteer {p.volunteer_id} over their weekly limit"
            assert filled[p.need_id] <= need_quantity(need)[0], f"need {p.need_id} over-filled"
        elif isinstance(p, MatchDeclined | MatchWithdrawn | MatchExpired | NoShowRecorded):
            gone = active.pop(p.match_id)
            if gone.fund_id is not None and gone.amount is not None:
                spent[gone.fund_id] -= gone.amount.amount_minor
                filled[gone.need_id] -= gone.amount.amount_minor
            else:
                filled[gone.need_id] -= 1
        elif isinstance(p, MatchCompleted):
            assert p.match_id in active


def partition_log(partition: int, seed: int = 3) -> list[Record]:
    """What the router logs on one partition of matcher.inputs for a small city, as records
    at offsets 0, 1, … (no cross-partition traffic: enough to drive one worker's partition)."""
    sc = generate(needs=60, volunteers=30, funds=4, seed=seed)
    router = Router()
    log: list[Record] = []
    for e in sc.events:
        heads = tuple(headers_for(e.event_id, e.event_type))
        for o in router.handle(Record("needs.events", 0, 0, None, encode(e), heads)):
            if o.partition == partition:
                heads = tuple(headers_for(o.event_id, o.event_type))
                log.append(Record(MATCHER_INPUTS.name, partition, len(log), o.key, o.value, heads))
    return log
