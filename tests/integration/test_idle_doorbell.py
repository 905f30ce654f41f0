"""A consumer with nothing to read stops fetching, and the doorbell wakes it at once
(services/platform/quiet.py, services/platform/doorbell.py), on the real broker and PostgreSQL.

The periodic look is set far beyond the test's deadline, so only the doorbell can explain a
record read in time: what the gateway's relay rings after publishing a posting."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.embedded.broker import EmbeddedBroker
from services.platform.db import connect
from services.platform.doorbell import Ringer
from services.platform.quiet import Quiet, pausing, start

LOOK_EVERY = 60.0
"""The paused consumer's own look: far beyond every wait below."""


async def _scenario(bootstrap: str, dsn: str) -> tuple[int, float, int]:
    topic = "idle-doorbell"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    await producer.send_and_wait(topic, b"before", partition=0)  # the topic exists
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await consumer.start()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    await consumer.seek_to_end(tp)
    idle = Quiet(*pausing(lambda: consumer), idle_after=0.3, check_every=LOOK_EVERY)
    tasks = start(idle, dsn)
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + 10
        while idle.pauses == 0 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=50)
            idle.saw(sum(len(v) for v in batch.values()))
        assert idle.pauses == 1 and consumer.paused() == {tp}, "never paused"
        # nothing is fetched while paused: a record sent now stays unread without the bell
        await producer.send_and_wait(topic, b"unheard", partition=0)
        quiet_until = time.monotonic() + 1.0
        while time.monotonic() < quiet_until:
            batch = await consumer.getmany(timeout_ms=50)
            got += [r.value for rs in batch.values() for r in rs]
        unheard = len(got)
        rung = time.monotonic()
        conn = await connect(dsn)
        try:
            await Ringer(every=0).ring(conn)
        finally:
            await conn.close()
        deadline = rung + 10
        while not got and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=50)
            got += [r.value for rs in batch.values() for r in rs]
        woke_in = time.monotonic() - rung
    finally:
        for task in tasks:
            task.cancel()
        await consumer.stop()
        await producer.stop()
    return unheard, woke_in, len(got)


def test_a_paused_consumer_reads_nothing_until_the_doorbell_then_at_once(
    broker: EmbeddedBroker, database_url: str
) -> None:
    unheard, woke_in, read = asyncio.run(_scenario(broker.bootstrap, database_url))
    assert unheard == 0  # paused: the record waited
    assert read == 1
    assert woke_in < 5.0 < LOOK_EVERY  # the bell, not the periodic look
