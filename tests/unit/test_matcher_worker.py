"""A matcher worker's snapshots, with its broker and database replaced by fakes.

aiokafka calls the rebalance listener from its coordinator task, concurrently with the worker's
live loop. A partition given up while a batch is half-applied must not be snapshotted then: the
state already holds an input whose outputs are not acknowledged, so a worker killed right
after would lose those outputs for good (every later owner resumes past that input)."""

from __future__ import annotations

import asyncio
import pickle
import uuid
from typing import Any

from aiokafka import TopicPartition

from schemas.topics import MATCHER_INPUTS
from services.domain.matching import MatcherState
from services.matcher.processor import PartitionMatcher
from services.matcher.worker import MatcherWorker
from services.platform.kafka import Record
from services.settings import Settings
from tests.partitioned import partition_log


class Message:
    """What aiokafka's getmany hands the worker, as far as `Record.of` reads it."""

    def __init__(self, r: Record) -> None:
        self.topic, self.partition, self.offset = r.topic, r.partition, r.offset
        self.key, self.value, self.headers, self.timestamp = r.key, r.value, r.headers, 0


class Producer:
    """Acknowledges each send at once, except that the first send waits for `gate`."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()
        self.acked: set[uuid.UUID] = set()

    async def send(self, topic: str, **kw: Any) -> asyncio.Future[None]:
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        self.acked.add(uuid.UUID(dict(kw["headers"])["event_id"].decode()))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Consumer:
    async def commit(self, offsets: dict[TopicPartition, Any]) -> None:
        pass

    async def end_offsets(self, parts: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(parts, 0)


class Pool:
    """Keeps each stored snapshot with the outputs acknowledged when it was stored."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.stored: list[tuple[int, MatcherState, set[uuid.UUID]]] = []

    async def execute(self, sql: str, *args: Any) -> None:
        assert sql.startswith("INSERT INTO matcher_snapshots")
        self.stored.append((args[1], pickle.loads(args[2]), set(self.producer.acked)))


class Lock(asyncio.Lock):
    """A lock that says when somebody had to wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.contended = asyncio.Event()

    async def acquire(self) -> bool:
        if self.locked():
            self.contended.set()
        return await super().acquire()


async def test_a_partition_given_up_mid_batch_is_snapshotted_after_the_batch() -> None:
    log = partition_log(0)
    replay = PartitionMatcher(0)
    caused = [[o.event_id for o in replay.handle(r)] for r in log]
    assert any(caused)
    first = next(i for i, ids in enumerate(caused) if ids)

    worker = MatcherWorker(Settings(KAFKA_BOOTSTRAP_SERVERS="unused:9092"), "matcher-test")
    producer = Producer()
    pool = Pool(producer)
    lock = Lock()
    worker.producer, worker.consumer, worker.pool, worker.deciding = (
        producer,  # type: ignore[assignment]
        Consumer(),  # type: ignore[assignment]
        pool,  # type: ignore[assignment]
        lock,
    )
    worker.owned[0] = PartitionMatcher(0)
    batch = {TopicPartition(MATCHER_INPUTS.name, 0): [Message(r) for r in log]}

    deciding = asyncio.create_task(worker._decide(batch))
    await asyncio.wait_for(producer.waiting.wait(), 10)  # input `first` applied, not acked
    giving_up = asyncio.create_task(worker.give_up([0]))
    contended = asyncio.create_task(lock.contended.wait())
    await asyncio.wait({giving_up, contended}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    producer.gate.set()
    await asyncio.wait_for(asyncio.gather(deciding, giving_up), 30)
    contended.cancel()

    assert pool.stored, "the partition given up was snapshotted"
    for next_offset, state, acked in pool.stored:
        reflected = log[:next_offset]
        assert state.seen == {r.event_id.int for r in reflected if r.event_id}, (
            "the snapshot's state is exactly its inputs"
        )
        owed = {i for ids in caused[:next_offset] for i in ids}
        assert owed <= acked, (
            f"snapshot at {next_offset} stored while outputs of inputs {first}.. were not acked"
        )
