"""Adapters: the router that builds the matcher's ordered input, and one partition's matcher."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from schemas.codec import decode, encode
from schemas.envelope import SYSTEM_ACTOR, Envelope, originate
from schemas.messages import ClockTicked, Message
from schemas.topics import (
    CLOCK_TICKS,
    FUNDS_EVENTS,
    MATCHER_INPUTS,
    MATCHES_EVENTS,
    MATCHES_POSTINGS,
    NEEDS_EVENTS,
    VOLUNTEERS_EVENTS,
)
from services.domain.matching import MatcherState, decide
from services.domain.outputs import Outgoing
from services.domain.routing import RoutingState, route
from services.platform.kafka import Record
from services.platform.rollback import RollbackPoint

ROUTED = {m.TYPE for m in MATCHER_INPUTS.messages} | {"MatchProposed"}
"""What the router reads: the matcher's inputs, and proposals (to learn who owns a match)."""


class Router:
    """Copies supply and demand events onto matcher.inputs, to the partition that owns them.

    A forwarded event keeps its original bytes and id: matcher.inputs is the logged order in
    which the matcher saw the world, which is what makes its decisions replayable. One router
    runs (its outputs are a function of what it read, and ids make a second copy harmless)."""

    name = "matcher-router"
    inputs = (
        NEEDS_EVENTS.name,
        FUNDS_EVENTS.name,
        VOLUNTEERS_EVENTS.name,
        MATCHES_POSTINGS.name,
        CLOCK_TICKS.name,
        MATCHES_EVENTS.name,
    )
    outputs = (MATCHER_INPUTS.name,)

    def __init__(self, partitions: int = MATCHER_INPUTS.partitions) -> None:
        self.state = RoutingState(partitions)
        self.seen: set[uuid.UUID] = set()
        self.raw: dict[uuid.UUID, bytes] = {}
        """The exact bytes of answers waiting for their match (forwarded as they came)."""
        self.rollback = RollbackPoint(self, ("state", "seen", "raw"))
        """Where an event that fails half-way is undone from (services/platform/rollback.py)."""

    def handle(self, record: Record) -> list[Outgoing]:
        """Route a decided supply or demand event once; refusals stay where they are."""
        if record.event_id is not None and record.event_id in self.seen:
            return []
        event = decode(record.value, record.event_type)
        if event.event_type not in ROUTED or event.event_id in self.seen:
            return []
        self.seen.add(event.event_id)
        self.raw[event.event_id] = record.value
        routed = route(self.state, event)
        out = [
            Outgoing(
                MATCHER_INPUTS.name,
                r.zone.encode(),
                r.envelope.event_id,
                r.envelope.event_type,
                self.raw[r.envelope.event_id] if r.original else encode(r.envelope),
                partition=r.partition,
            )
            for r in routed
        ]
        for r in routed:
            self.raw.pop(r.envelope.event_id, None)
        waiting = self.state.waiting.get(_match_of(event), [])
        if not any(e.event_id == event.event_id for e in waiting):
            self.raw.pop(event.event_id, None)
        return out


@dataclass(frozen=True)
class Anchor:
    """An input of one partition of matcher.inputs: its offset and its event id."""

    offset: int
    event_id: uuid.UUID


class PartitionMatcher:
    """One partition of matcher.inputs fed, in order, to the pure policy: its decisions go to
    matches.events, its requests and replies back onto matcher.inputs for their partition."""

    name = "matcher"
    inputs = (MATCHER_INPUTS.name,)
    outputs = (MATCHES_EVENTS.name, MATCHER_INPUTS.name)

    def __init__(
        self, partition: int, state: MatcherState | None = None, anchor: Anchor | None = None
    ) -> None:
        self.partition = partition
        self.state = state or MatcherState(partition=partition)
        self.next_offset = 0 if anchor is None else anchor.offset + 1
        """The input offset after the last record applied: where live processing goes on."""
        self.anchor = anchor
        """The last input that was new to the state (None while the state is empty). The state
        is exactly the fold of the partition up to and including it: inputs after it were
        copies of earlier ones (or undecodable) and changed nothing. A snapshot resumes after
        it and names it by event id, which is what survives the partition being renumbered."""
        self.rollback = RollbackPoint(self, ("state",))
        """Where an input that fails half-way is undone from (services/platform/rollback.py);
        an input the policy cannot compute with is refused before anything changes
        (services/domain/matching/vet.py)."""

    def handle(self, record: Record) -> list[Outgoing]:
        """Apply one input; each decision is keyed by its need (a refusal by its stream)."""
        event = decode(record.value, record.event_type)
        before = self.state.arrivals
        decided = decide(self.state, event)
        if self.state.arrivals != before:  # new to the state (a copy changes nothing)
            self.anchor = Anchor(record.offset, event.event_id)
        out = []
        for d in decided.out:
            target = decided.routes.get(d.event_id)
            if target is None:
                out.append(
                    Outgoing(MATCHES_EVENTS.name, _key(d), d.event_id, d.event_type, encode(d))
                )
            else:
                key = f"partition-{target}".encode()
                out.append(
                    Outgoing(MATCHER_INPUTS.name, key, d.event_id, d.event_type, encode(d), target)
                )
        return out


def _match_of(event: Envelope[Message]) -> uuid.UUID:
    match_id = getattr(event.payload, "match_id", None)
    return match_id if isinstance(match_id, uuid.UUID) else uuid.UUID(int=0)


def _key(decision: Envelope[Message]) -> bytes:
    need_id = getattr(decision.payload, "need_id", None)
    return str(need_id if need_id is not None else decision.stream_id).encode()


def clock_tick(now: datetime) -> Outgoing:
    """A tick saying it is `now`: the only way time reaches decisions. The router gives each
    partition of matcher.inputs its own copy."""
    event_id = uuid.uuid4()
    payload = ClockTicked(at=now)
    envelope = originate(payload, event_id=event_id, at=now, actor=SYSTEM_ACTOR, stream_id="clock")
    return Outgoing(CLOCK_TICKS.name, b"clock", event_id, payload.TYPE, encode(envelope))
