"""Adapters: the router that builds the matcher's ordered input, and the matcher itself."""

from __future__ import annotations

import uuid
from datetime import datetime

from schemas.codec import decode, encode
from schemas.envelope import SYSTEM_ACTOR, Envelope
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
from services.domain.matching import CITY_ZONE, MatcherState, apply, zone_of
from services.domain.outputs import Outgoing
from services.platform.kafka import Record

FORWARDED = {m.TYPE for m in MATCHER_INPUTS.messages}
"""What the matcher decides on; everything else (refusals, registrations) stays where it is."""


class Router:
    """Copies supply and demand events onto matcher.inputs, keyed by matching zone.

    The copy keeps the original bytes and event id: matcher.inputs is the logged order in which
    the matcher saw the world, which is what makes its decisions replayable."""

    name = "matcher-router"
    inputs = (
        NEEDS_EVENTS.name,
        FUNDS_EVENTS.name,
        VOLUNTEERS_EVENTS.name,
        MATCHES_POSTINGS.name,
        CLOCK_TICKS.name,
    )
    outputs = (MATCHER_INPUTS.name,)

    def __init__(self) -> None:
        self.forwarded: set[object] = set()

    def handle(self, record: Record) -> list[Outgoing]:
        """Forward a decided supply or demand event once; refusals stay where they are."""
        event = decode(record.value)
        if event.event_type not in FORWARDED or event.event_id in self.forwarded:
            return []
        self.forwarded.add(event.event_id)
        zone = zone_of(event.payload).encode()
        return [Outgoing(MATCHER_INPUTS.name, zone, event.event_id, event.event_type, record.value)]


class Matcher:
    """Feeds matcher.inputs, in order, to the pure policy and writes its proposals."""

    name = "matcher"
    inputs = (MATCHER_INPUTS.name,)
    outputs = (MATCHES_EVENTS.name,)

    def __init__(self) -> None:
        self.state = MatcherState()

    def handle(self, record: Record) -> list[Outgoing]:
        """Apply one input; each decision is keyed by its need (a refusal by its stream)."""
        event = decode(record.value)
        return [
            Outgoing(MATCHES_EVENTS.name, _key(d), d.event_id, d.event_type, encode(d))
            for d in apply(self.state, event)
        ]


def _key(decision: Envelope[Message]) -> bytes:
    need_id = getattr(decision.payload, "need_id", None)
    return str(need_id if need_id is not None else decision.stream_id).encode()


def clock_tick(now: datetime) -> Outgoing:
    """A tick saying it is `now` in the matching zone: the only way time reaches decisions."""
    event_id = uuid.uuid4()
    payload = ClockTicked(at=now)
    envelope = Envelope[Message](
        event_id=event_id,
        event_type=payload.TYPE,
        schema_version=payload.VERSION,
        stream_id=f"clock:{CITY_ZONE}",
        stream_seq=0,
        occurred_at=now,
        recorded_at=now,
        actor=SYSTEM_ACTOR,
        correlation_id=event_id,
        payload=payload,
    )
    return Outgoing(CLOCK_TICKS.name, CITY_ZONE.encode(), event_id, payload.TYPE, encode(envelope))
