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
from services.platform.kafka import headers_for, partition_for

log = logging.getLogger(__name__)


class IdempotencyConflict(Exception):
    """The same Idempotency-Key was used before with a different request."""


NEAR_DUPLICATE_SECONDS = 24 * 3600.0
"""How far back a need with the same category, place and window counts as a near-duplicate."""


@dataclass(frozen=True)
class Posting:
    """One posting to accept: where it goes, what it says, who posts it and what else to write.

    `similar_to` is the near-duplicate fingerprint of a need (None for other postings)."""

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


@dataclass(frozen=True)
class Accepted:
    """The answer to a posting; `replayed` when it is the stored answer to a repeated request."""

    response: dict[str, Any]
    replayed: bool


def request_hash(path: str, body: dict[str, Any]) -> str:
    """Fingerprint of a request, to tell a true retry from a different request with the same key."""
    canonical = json.dumps({"path": path, "body": body}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Postings:
    """Writes postings to the outbox and the broker; the gateway's only write path."""

    def __init__(self, pool: asyncpg.Pool, producer: AIOKafkaProducer) -> None:
        self.pool = pool
        self.producer = producer
        self._published: list[uuid.UUID] = []

    async def accept(self, posting: Posting) -> Accepted:
        """Record the posting durably (or find the original of a retry), then publish it.

        `posting.also` runs in the same transaction as the insert (ownership, registrations),
        and only for a new posting, never for a replayed one."""
        response = posting.response
        posting_id = uuid.UUID(response["posting_id"])
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
        async with self.pool.acquire() as conn, conn.transaction():
            if posting.idempotency_key is not None:
                prior = await conn.fetchrow(
                    "SELECT request_hash, response FROM postings"
                    " WHERE org_id = $1 AND idempotency_key = $2",
                    posting.org_id,
                    posting.idempotency_key,
                )
                if prior is not None:
                    if prior["request_hash"] != posting.request_hash:
                        raise IdempotencyConflict()
                    return Accepted(prior["response"], replayed=True)
            if posting.similar_to is not None:
                response = await self._flag_near_duplicate(conn, posting, response)
            inserted = await conn.fetchval(
                "INSERT INTO postings (posting_id, topic, kafka_key, value, event_type, org_id,"
                " idempotency_key, request_hash, response, fingerprint)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)"
                " ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
                " DO NOTHING RETURNING posting_id",
                posting_id,
                posting.topic.name,
                key,
                value,
                posting.payload.TYPE,
                posting.org_id,
                posting.idempotency_key,
                posting.request_hash,
                response,
                posting.similar_to,
            )
            if inserted is not None and posting.also is not None:
                await posting.also(conn)
        if inserted is None:  # a concurrent retry with the same key won the race
            return await self.accept(posting)
        await self._publish_now(posting.topic, posting_id, key, value, posting.payload.TYPE)
        return Accepted(response, replayed=False)

    async def _flag_near_duplicate(
        self, conn: asyncpg.Connection, posting: Posting, response: dict[str, Any]
    ) -> dict[str, Any]:
        """Add a warning naming recent postings of the same organisation that look the same
        (same category, place and window). They are flagged, never merged."""
        rows = await conn.fetch(
            "SELECT response->>'need_id' AS need_id FROM postings WHERE org_id = $1"
            " AND fingerprint = $2 AND accepted_at > now() - make_interval(secs => $3)"
            " ORDER BY seq DESC LIMIT 5",
            posting.org_id,
            posting.similar_to,
            NEAR_DUPLICATE_SECONDS,
        )
        if not rows:
            return response
        return response | {
            "warnings": [
                {
                    "kind": "possible_duplicate",
                    "message": "a need with the same category, place and window was posted "
                    "recently by your organisation; both are kept",
                    "need_ids": [r["need_id"] for r in rows],
                }
            ]
        }

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
