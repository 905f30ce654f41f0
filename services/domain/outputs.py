"""How a pure processor says what it wants written: a topic, a key and an envelope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from schemas.codec import encode
from schemas.envelope import Envelope, derive_id
from schemas.messages import Message


@dataclass(frozen=True)
class Outgoing:
    """One message a processor decided to write. `value` is the exact bytes to send."""

    topic: str
    key: bytes
    event_id: uuid.UUID
    event_type: str
    value: bytes
    partition: int | None = None
    """Set when the processor decides the partition itself (the owner of a matching zone);
    otherwise the key decides, through the default partitioner."""

    @classmethod
    def of(cls, topic: str, key: str | uuid.UUID, envelope: Envelope[Any]) -> Outgoing:
        """Encode an envelope for `topic` under `key`."""
        return cls(
            topic, str(key).encode(), envelope.event_id, envelope.event_type, encode(envelope)
        )


_ENVELOPE = Envelope[Message]
"""Parametrised once: looking the class up again costs more than building a small event."""


def derived(
    cause: Envelope[Any],
    payload: Message,
    *,
    label: str,
    stream_id: str,
    stream_seq: int,
) -> Envelope[Message]:
    """An event caused by `cause`: id derived from the cause's, times and actor copied from it.

    No clock is read, so a replay of the same cause yields the same bytes."""
    return _ENVELOPE(
        event_id=derive_id(cause.event_id, label),
        event_type=payload.TYPE,
        schema_version=payload.VERSION,
        stream_id=stream_id,
        stream_seq=stream_seq,
        occurred_at=cause.occurred_at,
        recorded_at=cause.recorded_at,
        actor=cause.actor,
        correlation_id=cause.correlation_id,
        causation_id=cause.event_id,
        payload=payload,
    )
