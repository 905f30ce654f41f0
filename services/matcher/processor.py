"""Adapters: the router that builds the matcher's ordered input, and the matcher itself."""

from __future__ import annotations

from schemas.codec import decode, encode
from schemas.messages import PostingRefused
from schemas.topics import (
    FUNDS_EVENTS,
    MATCHER_INPUTS,
    MATCHES_EVENTS,
    NEEDS_EVENTS,
    VOLUNTEERS_EVENTS,
)
from services.domain.matching import MatcherState, apply, zone_of
from services.domain.outputs import Outgoing
from services.platform.kafka import Record


class Router:
    """Copies supply and demand events onto matcher.inputs, keyed by matching zone.

    The copy keeps the original bytes and event id: matcher.inputs is the logged order in which
    the matcher saw the world, which is what makes its decisions replayable."""

    name = "matcher-router"
    inputs = (NEEDS_EVENTS.name, FUNDS_EVENTS.name, VOLUNTEERS_EVENTS.name)
    outputs = (MATCHER_INPUTS.name,)

    def __init__(self) -> None:
        self.forwarded: set[object] = set()

    def handle(self, record: Record) -> list[Outgoing]:
        """Forward a decided supply or demand event once; refusals stay where they are."""
        event = decode(record.value)
        if isinstance(event.payload, PostingRefused) or event.event_id in self.forwarded:
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
        """Apply one input; each proposal is keyed by its need."""
        event = decode(record.value)
        return [
            Outgoing(
                MATCHES_EVENTS.name,
                str(p.payload.need_id).encode(),  # type: ignore[attr-defined]
                p.event_id,
                p.event_type,
                encode(p),
            )
            for p in apply(self.state, event)
        ]
