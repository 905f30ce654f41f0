"""Adapter from a postings topic to the pure intake decisions and back to an events topic."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.codec import DecodeError, decode, encode
from schemas.envelope import Envelope
from schemas.messages import Message, NeedPosted
from schemas.topics import (
    DONATIONS_POSTINGS,
    FUNDS_EVENTS,
    NEEDS_EVENTS,
    NEEDS_POSTINGS,
    PLEDGES_POSTINGS,
    VOLUNTEERS_EVENTS,
    TopicSpec,
)
from services.domain.intake import IntakeState, decide
from services.domain.outputs import Outgoing
from services.platform.kafka import Record
from services.platform.rollback import RollbackPoint


@dataclass(frozen=True)
class IntakeKind:
    """One intake flow: the postings it reads and the events topic it alone writes."""

    service: str
    postings: TopicSpec
    events: TopicSpec


KINDS: dict[str, IntakeKind] = {
    "intake-needs": IntakeKind("intake-needs", NEEDS_POSTINGS, NEEDS_EVENTS),
    "intake-donations": IntakeKind("intake-donations", DONATIONS_POSTINGS, FUNDS_EVENTS),
    "intake-pledges": IntakeKind("intake-pledges", PLEDGES_POSTINGS, VOLUNTEERS_EVENTS),
}


class IntakeProcessor:
    """Decides each posting of one kind; refuses a message its topic does not carry."""

    def __init__(self, kind: IntakeKind) -> None:
        self.kind = kind
        self.name = kind.service
        self.inputs = (kind.postings.name,)
        self.outputs = (kind.events.name,)
        self.state = IntakeState()
        self._allowed = {m.TYPE for m in kind.postings.messages}
        self.rollback = RollbackPoint(self, ("state",))
        """Where a posting that fails half-way is undone from (services/platform/rollback.py)."""

    def handle(self, record: Record) -> list[Outgoing]:
        """Decode, check the message belongs on this topic, decide, encode."""
        posting = decode(record.value, record.event_type)
        if posting.event_type not in self._allowed:
            raise DecodeError(f"event_type: {posting.event_type} does not belong on {record.topic}")
        key = record.key or b""
        return [
            Outgoing(self.kind.events.name, _key(e, key), e.event_id, e.event_type, encode(e))
            for e in decide(self.state, posting)
        ]


def _key(event: Envelope[Message], posting_key: bytes) -> bytes:
    """A weekly need's later occurrences are keyed by their own need id, like every need."""
    need_id = getattr(event.payload, "need_id", None)
    if isinstance(event.payload, NeedPosted) and need_id is not None:
        return str(need_id).encode()
    return posting_key
