"""Publishing the outbox to Kafka after the answer: the relay.

A posting is acknowledged once its outbox row has committed (`OutboxWriter`); from then on it
is this relay's job to put it on its topic. Why not publish before answering: with the broker
down a request then waited for the producer's timeout (20–40 s), clients gave up and retried,
and a retried registration was answered with the stored answer, without the volunteer's token
that only the first answer carries. The outbox row is what makes the posting durable; the
broker is only where it goes next.

So the relay never blocks a request:
- each committed posting is handed over in memory (`hand_over`) and wakes the relay at once,
  so in the normal case it is on its topic a round trip after the commit, as before;
- while the broker is down, publishing fails and is retried with exponential backoff; postings
  keep being accepted and wait, in commit order, in memory (bounded) and in PostgreSQL;
- a sweep publishes whatever PostgreSQL holds unpublished for a few seconds that is not in
  memory: rows of a gateway that crashed between commit and publish, rows another process
  wrote (`exchange orgs create`), rows dropped from memory when it was full;
- published rows are marked in PostgreSQL, many in one statement; a mark that is lost (crash,
  database down) only means the posting is published again, and consumers recognise it by id.

An acknowledgement counts only from a broker that holds the topic as registered. Before each
batch the relay asks the broker, without letting it auto-create anything, whether every topic of
the batch exists with its registered partition count; if not, it publishes nothing, warns and
retries (creating topics is `ensure_topics`' job: the supervisor's, `exchange topics`', each
stream service's at start). Why: Tansu 0.6 (memory only) acknowledges a Produce for a topic it
does not have (offset 0) but the record can never be read, and the next Produce to that
partition fails. A producer that has kept metadata from a broker that died sends exactly that to
an empty broker started on the same address, and the posting was marked published and lost
(tests/integration/test_relay_broker_replaced.py). Auto-creation would be no better: 4 partitions
whatever the registry says, so keys would land on partitions nobody reads them from. And the
acknowledgements must come over the very connections that carried that check: a broker replaced
while a batch was in flight (aiokafka reconnects and resends by itself) shows as a new
connection, and the batch is published again rather than marked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.client import ConnectionGroup
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest

from schemas.topics import TopicSpec
from services.platform.doorbell import Ringer
from services.platform.kafka import headers_for, partition_for

log = logging.getLogger(__name__)


UNKNOWN_TOPIC_OR_PARTITION = 3
"""Kafka's error code for a topic the broker does not have."""


class TopicNotReady(RuntimeError):
    """A topic of the batch is missing on the broker or has another partition count than the
    registry says: nothing is published until someone creates it as registered."""


class BrokerChanged(RuntimeError):
    """The connection that acknowledged a batch is not the one its topics were checked on: the
    broker may have been replaced meanwhile, so the batch is published again, not marked."""


@dataclass(frozen=True)
class Unpublished:
    """One committed posting still to publish: the exact bytes stored in the outbox."""

    posting_id: uuid.UUID
    topic: str
    key: bytes
    value: bytes
    event_type: str


class Relay:
    """Publishes committed postings in commit order, retrying with backoff; see module doc."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        make_producer: Callable[[], AIOKafkaProducer],
        topics: Mapping[str, TopicSpec],
        *,
        batch: int = 500,
        max_pending: int = 50_000,
        sweep_every: float = 1.0,
        sweep_after: float = 3.0,
        backoff_first: float = 0.1,
        backoff_max: float = 5.0,
        behind_limit: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`make_producer` builds an unstarted producer; the relay starts it (again, after a
        failed start), so the gateway starts and accepts postings with the broker down.
        `sweep_after`: a row younger than this is left to the process that wrote it.
        `behind_limit`: how far behind (seconds) the relay may fall while the broker is
        answering before the gateway refuses new postings (`overloaded`); 0: never."""
        self.pool = pool
        self.make_producer = make_producer
        self.topics = topics
        self.batch = batch
        self.max_pending = max_pending
        self.sweep_every = sweep_every
        self.sweep_after = sweep_after
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.behind_limit = behind_limit
        self._clock = clock
        self._pending: dict[uuid.UUID, Unpublished] = {}  # insertion (commit) order
        self._handed: dict[uuid.UUID, float] = {}  # when each pending row was handed over
        self._last_ack = float("-inf")
        self._last_failure = float("-inf")
        self._unmarked: list[uuid.UUID] = []  # published, not yet marked in PostgreSQL
        self._wake = asyncio.Event()
        self.ringer = Ringer()
        """Tells paused consumers that postings are on their topics (services/platform/
        doorbell.py): rung after a publish, at most twice a second."""
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None
        self.published = 0
        """Postings this relay saw acknowledged by the broker (for /metrics)."""
        self.failures = 0
        """Publish attempts that failed (broker down or refusing); each was retried."""

    @property
    def pending(self) -> int:
        """Postings handed over and not yet acknowledged by the broker."""
        return len(self._pending)

    def behind(self) -> float:
        """Seconds the oldest posting handed over has waited for the broker's acknowledgement."""
        oldest = next(iter(self._handed.values()), None)  # same keys and order as `_pending`
        return 0.0 if oldest is None else max(0.0, self._clock() - oldest)

    def overloaded(self) -> bool:
        """True while the relay falls behind although the broker answers: more postings are
        accepted than the exchange publishes (on two cores, the HTTP work of a burst starves
        the relay of its event loop), and each one more would only wait longer. The gateway then
        refuses new postings with 503 and `Retry-After` (bench/README.md, `latency.py`).

        Not while the broker is down, refusing (the last attempt failed) or silent (no
        acknowledgement for twice the limit: stalled): postings are then accepted and wait
        durably in the outbox, which is the relay's promise; shedding them would turn a broker
        outage into an outage of the whole exchange."""
        if self.behind_limit <= 0 or self._last_failure >= self._last_ack:
            return False
        answering = self._clock() - self._last_ack < 2 * self.behind_limit
        return answering and self.behind() > self.behind_limit

    def hand_over(self, row: Unpublished) -> None:
        """Queue a committed posting and wake the relay. Never waits: when memory is full the
        row is left to the sweep (it is in PostgreSQL)."""
        if len(self._pending) < self.max_pending:
            self._pending[row.posting_id] = row
            self._handed[row.posting_id] = self._clock()
        self._wake.set()

    def start(self) -> None:
        """Run in the background of the running event loop until `stop()`."""
        self._task = asyncio.create_task(self._run())

    async def stop(self, drain: float = 2.0) -> None:
        """Stop; first give what is pending up to `drain` seconds to reach the broker (what does
        not is published by the next start's sweep)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._pending and self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._publish(list(self._pending.values())), drain)
        await self._mark()
        if self._producer is not None:
            with contextlib.suppress(Exception):  # with the broker down, stop() flushes forever
                await asyncio.wait_for(self._producer.stop(), drain)

    async def _run(self) -> None:
        delay = 0.0
        last_sweep = float("-inf")
        while True:
            if delay:
                await asyncio.sleep(delay)
            elif not self._pending:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.sweep_every)
            self._wake.clear()
            try:
                if self._pending:
                    await self._publish(list(self._pending.values())[: self.batch])
                    await self.ringer.ring(self.pool)
                if time.monotonic() - last_sweep >= self.sweep_every:
                    last_sweep = time.monotonic()
                    swept = await self._sweep()
                    if swept:
                        await self._publish(swept)
                        await self.ringer.ring(self.pool)
                        log.info("relay published swept postings", extra={"count": len(swept)})
                        if len(swept) >= self.batch:  # more wait (`exchange import`): at once
                            last_sweep = float("-inf")
                            self._wake.set()
                delay = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self._last_failure = self._clock()
                delay = min(self.backoff_max, max(self.backoff_first, delay * 2))
                log.warning(
                    "publishing failed; retrying",
                    extra={"error": repr(exc), "pending": len(self._pending), "retry_in": delay},
                )
            await self._mark()

    async def _publish(self, rows: list[Unpublished]) -> None:
        """Send `rows` in order and wait for every acknowledgement (one round trip for many);
        mark them only if the broker that acknowledged them was checked to hold their topics
        as registered (see module doc)."""
        producer = await self._started()
        connections = await self._check_topics(producer, {r.topic for r in rows})
        acks = []
        for r in rows:
            spec = self.topics[r.topic]
            acks.append(
                await producer.send(
                    spec.name,
                    value=r.value,
                    key=r.key,
                    partition=partition_for(r.key, spec.partitions),
                    headers=headers_for(r.posting_id, r.event_type),
                )
            )
        failed = [x for x in await asyncio.gather(*acks, return_exceptions=True) if x is not None]
        errors = [x for x in failed if isinstance(x, BaseException)]
        if errors:
            raise errors[0]
        for node, checked in connections.items():
            now = producer.client._conns.get((node, ConnectionGroup.DEFAULT))
            if now is not checked or not checked.connected():
                raise BrokerChanged(f"the connection to broker {node} changed during the batch")
        for r in rows:
            self._pending.pop(r.posting_id, None)
            self._handed.pop(r.posting_id, None)
            self._unmarked.append(r.posting_id)
        self.published += len(rows)
        self._last_ack = self._clock()

    async def _check_topics(self, producer: AIOKafkaProducer, topics: set[str]) -> dict[int, Any]:
        """Raise `TopicNotReady` unless every topic exists with its registered partition count;
        return the connection to each partition leader, as it was before the check.

        The Metadata request does not allow auto-creation: Tansu would otherwise create a
        missing topic with 4 partitions, whatever the registry says."""
        client = producer.client
        node = client.get_random_node()
        if node is None or not await client.ready(node):
            raise KafkaConnectionError(f"no broker to check topics on (node {node})")
        before = dict(client._conns)
        names = sorted(self.topics[t].name for t in topics)
        response = await client.send(node, MetadataRequest(names, allow_auto_topic_creation=False))
        leaders: set[int] = set()
        found = {t[1]: t for t in response.topics}
        for name in names:
            entry = found.get(name)
            wanted = self.topics[name].partitions
            if entry is None or entry[0] == UNKNOWN_TOPIC_OR_PARTITION:
                raise TopicNotReady(f"topic {name} does not exist on the broker")
            if entry[0] != 0:
                raise TopicNotReady(f"topic {name}: broker error {entry[0]}")
            partitions = entry[-1]
            if len(partitions) != wanted:
                raise TopicNotReady(
                    f"topic {name} has {len(partitions)} partitions, the registry says {wanted}"
                )
            leaders.update(p[2] for p in partitions)
        return {n: before.get((n, ConnectionGroup.DEFAULT)) for n in leaders}

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self.make_producer()
            try:
                await producer.start()
            except BaseException:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _sweep(self) -> list[Unpublished]:
        """Rows unpublished for `sweep_after` seconds that this relay does not already hold."""
        held = [*self._pending, *self._unmarked]
        rows = await self.pool.fetch(
            "SELECT posting_id, topic, kafka_key, value, event_type FROM postings"
            " WHERE published_at IS NULL AND accepted_at < now() - make_interval(secs => $1)"
            " AND NOT (posting_id = ANY($2::uuid[])) ORDER BY seq LIMIT $3",
            self.sweep_after,
            held,
            self.batch,
        )
        return [
            Unpublished(
                r["posting_id"],
                r["topic"],
                bytes(r["kafka_key"]),
                bytes(r["value"]),
                r["event_type"],
            )
            for r in rows
        ]

    async def _mark(self) -> None:
        """Record as published what the broker acknowledged; on failure keep it for next time."""
        if not self._unmarked:
            return
        batch = self._unmarked[:10_000]
        try:
            await self.pool.execute(
                "UPDATE postings SET published_at = now() WHERE posting_id = ANY($1::uuid[])"
                " AND published_at IS NULL",
                batch,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("marking postings published failed", extra={"error": repr(exc)})
            return
        del self._unmarked[: len(batch)]
