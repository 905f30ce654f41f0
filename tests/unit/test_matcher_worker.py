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
from services.matcher.worker import MatcherWorker, group_name
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


class Wedged:
    """A consumer in a rebalance that never ends: getmany waits for an assignment forever
    (as aiokafka's does while the group waits on a dead leader)."""

    def __init__(self) -> None:
        self.stopped = False

    async def getmany(self, **kw: Any) -> dict[TopicPartition, list[Any]]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def stop(self) -> None:
        self.stopped = True


async def test_a_poll_during_an_endless_rebalance_returns_empty_within_its_bound() -> None:
    worker = MatcherWorker(Settings(KAFKA_BOOTSTRAP_SERVERS="unused:9092"), "matcher-test")
    worker.consumer = Wedged()  # type: ignore[assignment]
    assert await asyncio.wait_for(worker._poll(), 10) == {}


class EpochPool:
    """`matcher_group` as the compare-and-set in `_move_group` sees it."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    async def fetchval(self, sql: str, *args: Any) -> int | None:
        if sql.startswith("UPDATE matcher_group"):
            if args[0] != self.epoch:
                return None  # another worker moved first
            self.epoch += 1
            return self.epoch
        assert sql.startswith("SELECT epoch")
        return self.epoch


async def test_a_stalled_rebalance_moves_every_worker_to_a_fresh_group() -> None:
    first, second = (
        MatcherWorker(Settings(KAFKA_BOOTSTRAP_SERVERS="unused:9092"), f"matcher-{n}")
        for n in (1, 2)
    )
    pool = EpochPool(0)
    joined: list[str] = []
    for worker in (first, second):
        worker.consumer = Wedged()  # type: ignore[assignment]
        worker.pool = pool  # type: ignore[assignment]
        worker.rebalancing_since = 0.0

        async def join(w: MatcherWorker = worker) -> None:
            joined.append(group_name(w.epoch))
            w.rebalancing_since = 1.0

        worker._join = join  # type: ignore[method-assign]

    await first._move_group()
    await second._move_group()  # stalled in the same old group: follows, does not move again
    assert pool.epoch == 1
    assert joined == ["matcher.1", "matcher.1"]
    assert first.consumer.stopped and second.consumer.stopped  # type: ignore[union-attr]
