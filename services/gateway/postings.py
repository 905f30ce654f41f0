"""Accepting a posting: durable in PostgreSQL before the client hears "accepted", then published.

The `postings` table is a transactional outbox: the row commits before the answer, the publish
follows, and a relay publishes anything left unpublished (a crash between commit and publish).
It is also what brings the embedded broker's topics back after the broker forgets them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer

from schemas.codec import encode
from schemas.common import Role
from schemas.envelope import Actor, Envelope
from schemas.messages import Message
from schemas.topics import TopicSpec
from services.domain.intake import stream_of
from services.gateway.outbox import (
    OutboxRow,
    OutboxWriter,
    Ownership,
    Written,
)
from services.platform.kafka import headers_for, partition_for

log = logging.getLogger(__name__)


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


class Postings:
    """Writes postings to the outbox and the broker; the gateway's only write path."""

    def __init__(
        self, pool: asyncpg.Pool, producer: AIOKafkaProducer, outbox: OutboxWriter
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.outbox = outbox
        self._published: list[uuid.UUID] = []

    async def accept(self, posting: Posting) -> Accepted:
        """Record the posting durably (or find the original of a retry), then publish it.

        The row commits in a group commit with other requests' rows (`OutboxWriter`) before
        this returns; `posting.owns` and `posting.also` commit with it, and only for a new
        posting, never for a replayed one."""
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
        value = encode(envelope)
        key = str(posting.key).encode()
        written = await self.outbox.write(
            OutboxRow(
                posting_id=posting_id,
                topic=posting.topic.name,
                kafka_key=key,
                value=value,
                event_type=posting.payload.TYPE,
                org_id=posting.org_id,
                idempotency_key=posting.idempotency_key,
                request_hash=posting.request_hash,
                response=posting.response,
                fingerprint=posting.similar_to,
                owns=posting.owns,
                also=posting.also,
            )
        )
        if not written.replayed:
            await self._publish_now(posting.topic, posting_id, key, value, posting.payload.TYPE)
        return written

    async def _publish_now(
        self, topic: TopicSpec, posting_id: uuid.UUID, key: bytes, value: bytes, event_type: str
    ) -> None:
        try:
            await self.publish(topic.name, topic.partitions, posting_id, key, value, event_type)
        except Exception as exc:  # durable already; the relay will publish it
            log.warning(
                "publish deferred to relay",
                extra={"posting_id": str(posting_id), "error": repr(exc)},
            )

    async def publish(
        self,
        topic: str,
        partitions: int,
        posting_id: uuid.UUID,
        key: bytes,
        value: bytes,
        event_type: str,
    ) -> None:
        """Send one posting and wait for the broker's ack; it is marked published in the next
        batch (`mark_published`), one statement for many postings."""
        await self.producer.send_and_wait(
            topic,
            value=value,
            key=key,
            partition=partition_for(key, partitions),
            headers=headers_for(posting_id, event_type),
        )
        self._published.append(posting_id)

    async def flush_published(self) -> None:
        """Record as published every posting the broker acknowledged since the last flush."""
        if not self._published:
            return
        batch, self._published = self._published, []
        await self.pool.execute(
            "UPDATE postings SET published_at = now() WHERE posting_id = ANY($1::uuid[])"
            " AND published_at IS NULL",
            batch,
        )

    async def mark_published(self, interval: float = 0.2) -> None:
        """Forever: flush published marks every `interval` seconds. A mark lost in a crash
        only means the relay publishes that posting again, which consumers recognise."""
        while True:
            try:
                await self.flush_published()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("marking postings published failed", extra={"error": repr(exc)})
            await asyncio.sleep(interval)

    async def relay(self, topics: dict[str, TopicSpec], interval: float = 1.0) -> None:
        """Forever: publish postings left unpublished for more than a few seconds, in order."""
        while True:
            try:
                rows = await self.pool.fetch(
                    "SELECT posting_id, topic, kafka_key, value, event_type FROM postings"
                    " WHERE published_at IS NULL AND accepted_at < now() - interval '3 seconds'"
                    " ORDER BY seq LIMIT 500"
                )
                for r in rows:
                    spec = topics[r["topic"]]
                    await self.publish(
                        spec.name,
                        spec.partitions,
                        r["posting_id"],
                        r["kafka_key"],
                        r["value"],
                        r["event_type"],
                    )
                if rows:
                    log.info("relay published", extra={"count": len(rows)})
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("relay failed; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(interval)
