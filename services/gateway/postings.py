"""Accepting a posting: durable in PostgreSQL before the client hears "accepted"; published after.

The `postings` table is a transactional outbox: the row commits, the client is answered, and
the relay (`services/gateway/relay.py`) publishes it in the background, at once when the broker
is up and with retries while it is down. The table is also what brings the embedded broker's
topics back after the broker forgets them.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from schemas.codec import encode
from schemas.common import Role
from schemas.envelope import Actor, Envelope
from schemas.messages import Message
from schemas.topics import TopicSpec
from services.domain.intake import stream_of
from services.gateway.limits import Refused
from services.gateway.outbox import (
    OutboxRow,
    OutboxWriter,
    Ownership,
    Written,
)
from services.gateway.relay import Relay, Unpublished


@dataclass(frozen=True)
class Posting:
    """One posting to accept: where it goes, what it says, who posts it and what else to write.

    `similar_to` is the near-duplicate fingerprint of a need (None for other postings); `owns`
    records the fund, need or pledge it creates; `also` is any other write that must commit
    with it (a registration)."""

    topic: TopicSpec
    key: uuid.UUID
    payload: Message
    org_id: str
    role: Role
    idempotency_key: str | None
    request_hash: str
    response: dict[str, Any]
    also: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
    similar_to: str | None = None
    owns: tuple[Ownership, ...] = ()


Accepted = Written
"""The answer to a posting; `replayed` when it is the stored answer to a repeated request."""


def request_hash(path: str, body: dict[str, Any]) -> str:
    """Fingerprint of a request, to tell a true retry from a different request with the same key."""
    canonical = json.dumps({"path": path, "body": body}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


OVERLOAD_RETRY_AFTER = 1
"""Seconds an overloaded gateway asks a client to wait: a second of backlog is what tips it."""


class Postings:
    """Writes postings to the outbox; the gateway's only write path. Publishing is the relay's."""

    def __init__(self, pool: asyncpg.Pool, outbox: OutboxWriter, relay: Relay) -> None:
        self.pool = pool
        self.outbox = outbox
        self.relay = relay
        self.refused_overloaded = 0
        """Postings refused because the relay was overloaded (for /metrics)."""

    def refuse_if_overloaded(self) -> None:
        """Raise `Refused` (503, `Retry-After`) while the relay is overloaded. Checked when a
        posting route's dependencies are solved (services/gateway/deps.py, `postings_of`, which
        every posting route takes), before its body is validated or anything is looked up: a
        refusal must cost less than an acceptance, or shedding load would itself be the load."""
        if self.relay.overloaded():
            self.refused_overloaded += 1
            raise Refused(
                503,
                "overloaded",
                "the exchange is accepting postings faster than it can publish them; nothing"
                " was written: retry after the time given in Retry-After",
                {"Retry-After": str(OVERLOAD_RETRY_AFTER)},
            )

    async def accept(self, posting: Posting) -> Accepted:
        """Record the posting durably (or find the original of a retry) and hand it to the relay.

        Returns as soon as the row has committed, in a group commit with other requests' rows
        (`OutboxWriter`); `posting.owns` and `posting.also` commit with it, and only for a new
        posting, never for a replayed one. It never waits for the broker: the relay publishes
        it right after, and keeps retrying while the broker is down. (While the relay is
        overloaded, posting routes refuse before they get here: `refuse_if_overloaded`.)"""
        row = outbox_row(posting)
        written = await self.outbox.write(row)
        if not written.replayed:
            self.relay.hand_over(unpublished(row))
        return written


def outbox_row(posting: Posting) -> OutboxRow:
    """The outbox row of a posting: its envelope's exact bytes (the id is the posting's id),
    who posted it and what to write with it. Also used by the bulk import
    (services/importing), which writes many postings in one transaction of its own."""
    posting_id = uuid.UUID(posting.response["posting_id"])
    now = datetime.now(UTC)
    envelope = Envelope[Message](
        event_id=posting_id,
        event_type=posting.payload.TYPE,
        schema_version=posting.payload.VERSION,
        stream_id=stream_of(posting.payload),
        stream_seq=0,
        occurred_at=now,
        recorded_at=now,
        actor=Actor(org_id=posting.org_id, role=posting.role),
        correlation_id=posting_id,
        idempotency_key=posting.idempotency_key,
        payload=posting.payload,
    )
    return OutboxRow(
        posting_id=posting_id,
        topic=posting.topic.name,
        kafka_key=str(posting.key).encode(),
        value=encode(envelope),
        event_type=posting.payload.TYPE,
        org_id=posting.org_id,
        idempotency_key=posting.idempotency_key,
        request_hash=posting.request_hash,
        response=posting.response,
        fingerprint=posting.similar_to,
        owns=posting.owns,
        also=posting.also,
    )


def unpublished(row: OutboxRow) -> Unpublished:
    """A committed row as the relay publishes it."""
    return Unpublished(row.posting_id, row.topic, row.kafka_key, row.value, row.event_type)
