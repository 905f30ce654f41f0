"""A matcher worker: one member of the `matcher` consumer group, owning the partitions of
matcher.inputs the group gives it, with one `MatcherState` each.

Plain aiokafka rather than faust (docs/architecture.md says why): the worker must rebuild a
partition's state before it decides anything on it, at the moment it is assigned, and faust
offers no hook that holds its stream back meanwhile. Rebuilding is: the latest snapshot from
PostgreSQL (state plus the input offset it reflects), then the partition's log from there to
its end, writing whatever decisions are missing from the output topics. Then the consumer is
sought to where the replay stopped and live processing goes on in batches, every output
acknowledged before the next batch, offsets committed after.

Two workers never decide differently on the same partition: decisions are a pure function of
the partition's log, ids included, so even a worker that has not yet noticed it lost a
partition can only write copies of what the new owner writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import pickle
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

import services.domain.matching as matching_module
from schemas.codec import DecodeError, decode
from schemas.topics import MATCHER_INPUTS, MATCHES_EVENTS, partitions_of
from services.domain.outputs import Outgoing
from services.matcher.processor import Anchor, PartitionMatcher
from services.platform import logs, quiet, taskdump
from services.platform.db import Heartbeat, connect_pool, migrate
from services.platform.kafka import (
    Record,
    client_security,
    ensure_topics,
    headers_for,
    read_from,
)
from services.platform.processor import process
from services.settings import Settings

log = logging.getLogger(__name__)

GROUP = "matcher"
BATCH_MAX = 2000
COMMIT_EVERY_SECONDS = 1.0
"""Committed positions only show lag (a new owner rebuilds from its snapshot, never from them),
so they are committed once a second rather than after every batch: under cross-partition
chatter a batch is often a handful of inputs, and each commit is a round trip."""
OUTPUT_TOPICS = (MATCHES_EVENTS.name, MATCHER_INPUTS.name)
JOIN_STALL_SECONDS = 30.0
"""A rebalance this worker has been in for longer than this is abandoned: every worker moves to
a fresh consumer group (the epoch in `matcher_group`). Seen on the embedded broker when members
left or were killed mid-rebalance: the group kept a departed member as its leader, every live
member was told to wait for that leader's assignment, for good, and leaving and joining again
as new members did not clear it. A join takes 3-6 s there; 30 s is far past a healthy one."""
EPOCH_CHECK_SECONDS = 2.0
"""How often a worker looks whether another moved the workers to a new group."""


def group_name(epoch: int) -> str:
    """The consumer group of the matcher workers at `epoch` (`matcher`, then `matcher.N`)."""
    return GROUP if epoch == 0 else f"{GROUP}.{epoch}"


POLL_BOUND_SECONDS = 1.0
"""The longest one `getmany` may hold the loop: aiokafka's waits for an assignment without
limit while a rebalance lasts, and the loop must still see a stop signal and a stalled join."""


def code_version() -> str:
    """Snapshots are pickled state: one taken by other code is not trusted, but replayed."""
    package = Path(matching_module.__file__).parent
    digest = hashlib.sha256()
    for source in sorted(package.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: MatcherWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        self.worker.rebalancing_since = time.monotonic()
        await self.worker.give_up([tp.partition for tp in revoked])

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        # the group formed: a long rebuild is work, not a stalled rebalance
        self.worker.rebalancing_since = None
        # Rebuilt here, inside the rebalance: the consumer fetches nothing until this returns,
        # and no other rebalance can revoke a partition half-way through its rebuild.
        self.worker.rebuilding = True
        try:
            await self.worker.take_over([tp.partition for tp in assigned])
        finally:
            self.worker.rebuilding = False


class MatcherWorker:
    """Owns some partitions; rebuilds each on assignment; decides in acknowledged batches."""

    def __init__(self, settings: Settings, name: str) -> None:
        self.settings = settings
        self.name = name
        self.bootstrap = settings.require_kafka()
        self.owned: dict[int, PartitionMatcher] = {}
        self.since_snapshot: dict[int, int] = {}
        self.applied = 0
        self.pool: asyncpg.Pool | None = None
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        self.version = code_version()
        self.uncommitted: dict[TopicPartition, int] = {}
        self.committed_at = 0.0
        self.rebalancing_since: float | None = None
        """When the rebalance this worker is in began (None: not in one). Set on joining and
        on every revocation, cleared when partitions are assigned (even none)."""
        self.rebuilding = False
        """True while assigned partitions are rebuilt: not ready until they are."""
        self.epoch = 0
        """The group epoch this worker's consumer joined under (see `group_name`)."""
        self.epoch_checked_at = 0.0
        self.deciding = asyncio.Lock()
        """Held while a batch is applied and its outputs acknowledged, and while a state is
        snapshotted: aiokafka runs the rebalance listener in its own task, concurrently with
        the live loop, and a partition must not be given up half-way through a batch."""

    # ---- membership ----

    async def take_over(self, partitions: list[int]) -> None:
        """Rebuild every newly assigned partition before anything is fetched for it."""
        new = {p for p in partitions if p not in self.owned}
        log.info("partitions assigned", extra={"partitions": sorted(partitions)})
        if new:
            await self.rebuild(new)

    async def give_up(self, partitions: list[int]) -> None:
        """Snapshot what is handed over (the next owner replays less), then forget it.

        Runs in aiokafka's coordinator task, which does not wait for the live loop: a batch may
        be half-applied, its outputs not yet acknowledged. Taking the lock waits for that
        batch, so the snapshot never claims an input whose state change or outputs are not
        complete (a snapshot ahead of its state loses those inputs for every later owner)."""
        async with self.deciding:
            for p in partitions:
                self.uncommitted.pop(TopicPartition(MATCHER_INPUTS.name, p), None)
                proc = self.owned.pop(p, None)
                if proc is not None and self.since_snapshot.get(p, 0) > 0:
                    await self.snapshot(proc)
        if partitions:
            log.info("partitions revoked", extra={"partitions": partitions})

    # ---- snapshots ----

    async def snapshot(self, proc: PartitionMatcher) -> None:
        """Store the partition's state, resuming after its anchor (the last input new to it).

        Callers hold `self.deciding`: nothing changes the state while it is pickled (in a
        thread, so the consumer's heartbeats go on), and the outputs of every input it
        reflects have been acknowledged."""
        assert self.pool is not None
        anchor = proc.anchor
        if anchor is None:  # nothing new was ever applied: nothing worth resuming from
            self.since_snapshot[proc.partition] = 0
            return
        outputs = await self._output_positions()
        state = await asyncio.to_thread(pickle.dumps, proc.state, pickle.HIGHEST_PROTOCOL)
        await self.pool.execute(
            "INSERT INTO matcher_snapshots (kafka_partition, next_offset, state, outputs_from,"
            " events_applied, code_version, last_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (kafka_partition) DO UPDATE SET next_offset = $2, state = $3,"
            " outputs_from = $4, events_applied = $5, code_version = $6, last_event_id = $7,"
            " taken_at = now() WHERE matcher_snapshots.next_offset <= $2",
            proc.partition,
            anchor.offset + 1,
            state,
            outputs,
            proc.state.arrivals,
            self.version,
            anchor.event_id,
        )
        self.since_snapshot[proc.partition] = 0
        log.info(
            "snapshot taken",
            extra={"partition": proc.partition, "offset": anchor.offset + 1, "bytes": len(state)},
        )

    async def _output_positions(self) -> dict[str, int]:
        """Per output partition, an offset at or before anything written after now. End
        offsets that a broker reports short only make the later search longer, never wrong."""
        assert self.consumer is not None
        parts = [TopicPartition(t, p) for t in OUTPUT_TOPICS for p in range(partitions_of(t))]
        ends = await self.consumer.end_offsets(parts)
        return {f"{tp.topic}:{tp.partition}": int(o) for tp, o in ends.items()}

    async def _load(self, partition: int) -> tuple[PartitionMatcher, dict[tuple[str, int], int]]:
        """The partition's snapshot if it describes the log this broker holds, else a fresh
        state; with where to look for decisions already written."""
        assert self.pool is not None
        row = await self.pool.fetchrow(
            "SELECT next_offset, state, outputs_from, code_version, last_event_id"
            " FROM matcher_snapshots WHERE kafka_partition = $1",
            partition,
        )
        origin = {(t, p): 0 for t in OUTPUT_TOPICS for p in range(partitions_of(t))}
        if row is None:
            return PartitionMatcher(partition), origin
        if row["code_version"] != self.version:
            log.info(
                "snapshot ignored: taken by other code; replaying the partition from the start",
                extra={"partition": partition, "snapshot_code": row["code_version"]},
            )
            return PartitionMatcher(partition), origin
        anchor = (
            None
            if row["last_event_id"] is None
            else Anchor(row["next_offset"] - 1, row["last_event_id"])
        )
        why = (
            "it does not name its last input (taken before snapshots did)"
            if anchor is None
            else await asyncio.to_thread(_anchor_mismatch, self.bootstrap, partition, anchor)
        )
        if why is not None:
            # e.g. the broker forgot and the partition was renumbered by a restore that did not
            # move this snapshot: its offset now points at other inputs. Dropped, so that the
            # snapshots this worker takes from the replay are not refused as older.
            await self.pool.execute(
                "DELETE FROM matcher_snapshots WHERE kafka_partition = $1 AND next_offset = $2"
                " AND last_event_id IS NOT DISTINCT FROM $3",
                partition,
                row["next_offset"],
                row["last_event_id"],
            )
            log.warning(
                "snapshot discarded: %s; replaying the partition from the start",
                why,
                extra={
                    "partition": partition,
                    "snapshot_offset": row["next_offset"],
                    "last_event_id": str(row["last_event_id"]),
                    "reason": why,
                },
            )
            return PartitionMatcher(partition), origin
        assert anchor is not None
        # our own bytes, from our own database, checked against this code's version and log
        proc = PartitionMatcher(partition, pickle.loads(row["state"]), anchor)
        outputs = row["outputs_from"]
        for key, offset in outputs.items():
            topic, _, p = key.rpartition(":")
            origin[(topic, int(p))] = int(offset)
        return proc, origin

    # ---- rebuilding a partition ----

    async def rebuild(self, partitions: set[int]) -> None:
        """Snapshot, then the log from there: each state exactly as the last owner had it, and
        every decision it owed written (once: those already on the topics are skipped)."""
        assert self.consumer is not None and self.producer is not None
        started = time.monotonic()
        # Read the log as it was when the rebuild began: under a steady load its partitions
        # never fall quiet, and a read waiting for that kept a worker rebuilding for minutes.
        # What comes after is the live loop's (the consumer is sought to where this stops); an
        # output missed here for that reason is written again, a copy under the same id.
        cut = int(time.time() * 1000)
        loaded = {p: await self._load(p) for p in sorted(partitions)}
        origin: dict[tuple[str, int], int] = {}
        for _, outputs_from in loaded.values():
            for tp, offset in outputs_from.items():
                origin[tp] = min(origin.get(tp, offset), offset)
        present = await asyncio.to_thread(
            lambda: {
                r.event_id
                for r in read_from(self.bootstrap, origin, written_before_ms=cut)
                if r.event_id
            }
        )
        for partition, (proc, _) in loaded.items():
            resumed_at = proc.next_offset
            start = {(MATCHER_INPUTS.name, partition): resumed_at}
            records = await asyncio.to_thread(_read, self.bootstrap, start, cut)
            pending = []
            for record in records:
                for out in process(proc, record):
                    if out.event_id not in present:
                        pending.append(await self._send(out))
                        present.add(out.event_id)
                proc.next_offset = record.offset + 1
            for sent in pending:
                await sent
            self.owned[partition] = proc
            self.since_snapshot[partition] = len(records)
            # committed as soon as the loop idles: lag monitoring sees the rebuild, not the
            # last owner's position
            self.uncommitted[TopicPartition(MATCHER_INPUTS.name, partition)] = proc.next_offset
            self.consumer.seek(TopicPartition(MATCHER_INPUTS.name, partition), proc.next_offset)
            log.info(
                "partition rebuilt",
                extra={
                    "partition": partition,
                    "from_offset": resumed_at,
                    "replayed": len(records),
                    "rewritten": len(pending),
                    "seconds": round(time.monotonic() - started, 3),
                },
            )

    async def _send(self, out: Outgoing) -> Any:
        assert self.producer is not None
        return await self.producer.send(
            out.topic,
            key=out.key,
            value=out.value,
            partition=out.partition,
            headers=headers_for(out.event_id, out.event_type),
        )

    # ---- the live loop ----

    async def run(self, stop: asyncio.Event) -> None:
        settings = self.settings
        dsn = settings.require_database()
        log.info("starting: migrations, topics, pool")
        await migrate(dsn)
        await asyncio.to_thread(ensure_topics, self.bootstrap)
        self.pool = await connect_pool(dsn, max_size=2)
        beat = Heartbeat(self.pool, self.name, settings.heartbeat_seconds)
        beat.start()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=1,
            enable_idempotence=False,
            **client_security(settings, "aiokafka"),
        )
        log.info("starting the producer")
        await self.producer.start()
        self.epoch = await self._read_epoch() or 0
        await self._join()
        started = time.monotonic()
        idle = quiet.from_settings(settings, *quiet.pausing(lambda: self.consumer))
        quieting = quiet.start(idle, dsn)
        try:
            while not stop.is_set():
                batch = await self._poll(idle is not None and idle.state.paused)
                if idle is not None:
                    idle.saw(quiet.work_in(r.headers for rs in batch.values() for r in rs))
                await self._decide(batch)
                if self.rebalancing_since is None and not self.rebuilding and not beat.ready:
                    beat.ready = True
                    await beat.beat()
                    log.info("ready", extra={"partitions": sorted(self.owned)})
                elif (
                    self.rebalancing_since is not None
                    and time.monotonic() - self.rebalancing_since > JOIN_STALL_SECONDS
                ):
                    beat.ready = False
                    await self._move_group()
                if time.monotonic() - self.epoch_checked_at >= EPOCH_CHECK_SECONDS:
                    self.epoch_checked_at = time.monotonic()
                    epoch = await self._read_epoch()
                    if epoch is not None and epoch != self.epoch:
                        beat.ready = False
                        await self._rejoin(epoch, "another worker moved the group")
                if self.uncommitted and not batch:  # idle: show the positions reached
                    await self.commit()
                beat.details = {
                    "group": group_name(self.epoch),
                    "partitions": sorted(self.owned),
                    # the next input each owned partition will decide: with the log's end, the
                    # matcher's lag (`exchange status`, the fault suite's "caught up")
                    "positions": {str(p): proc.next_offset for p, proc in self.owned.items()},
                    "applied": self.applied,
                    "rate": round(self.applied / max(time.monotonic() - started, 1e-9), 1),
                }
        finally:
            for task in quieting:
                task.cancel()
            if self.uncommitted:
                await self.commit()
            async with self.deciding:
                for proc in list(self.owned.values()):
                    if self.since_snapshot.get(proc.partition, 0) > 0:
                        await self.snapshot(proc)
            await self._leave()
            await self.producer.stop()
            await beat.stop()
            await self.pool.close()

    # ---- group membership ----

    async def _join(self) -> None:
        """A new consumer (a new member id) subscribed to matcher.inputs; returns at once, the
        join itself goes on in aiokafka's coordinator task."""
        settings = self.settings
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=group_name(self.epoch),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **client_security(settings, "aiokafka"),
        )
        await self.consumer.start()
        self.rebalancing_since = time.monotonic()
        self.consumer.subscribe([MATCHER_INPUTS.name], listener=_Listener(self))
        log.info("joining the group", extra={"group": group_name(self.epoch)})

    async def _leave(self) -> None:
        """Stop the consumer (it leaves the group), within a bound: a broker that does not
        answer must not keep a stopping worker alive until it is killed."""
        assert self.consumer is not None
        try:
            await asyncio.wait_for(self.consumer.stop(), timeout=15)
        except (TimeoutError, KafkaError) as exc:
            log.warning("consumer did not stop cleanly", extra={"error": repr(exc)})

    async def _read_epoch(self) -> int | None:
        """The workers' group epoch, or None while the database cannot say (keep the group)."""
        assert self.pool is not None
        try:
            epoch = await self.pool.fetchval("SELECT epoch FROM matcher_group")
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot read the matcher group epoch", extra={"error": repr(exc)})
            return None
        return int(epoch) if epoch is not None else 0

    async def _move_group(self) -> None:
        """The rebalance has not ended for JOIN_STALL_SECONDS: move every worker to a fresh
        group. Compare-and-set on the epoch this worker joined under, so that two workers
        stalled together move once, to the same group."""
        assert self.pool is not None and self.rebalancing_since is not None
        stalled = round(time.monotonic() - self.rebalancing_since, 1)
        reason = f"rebalance of {group_name(self.epoch)} stalled for {stalled}s"
        try:
            moved = await self.pool.fetchval(
                "UPDATE matcher_group SET epoch = epoch + 1, moved_at = now(), moved_by = $2,"
                " reason = $3 WHERE epoch = $1 RETURNING epoch",
                self.epoch,
                self.name,
                reason,
            )
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning("cannot move the matcher group yet", extra={"error": repr(exc)})
            self.rebalancing_since = time.monotonic()  # try again after another stall period
            return
        epoch = moved if moved is not None else await self._read_epoch()
        await self._rejoin(epoch if epoch is not None else self.epoch + 1, reason)

    async def _rejoin(self, epoch: int, reason: str) -> None:
        """Give up what is owned (snapshotting it), leave, and join the group of `epoch`."""
        log.warning(
            "moving to consumer group %s: %s",
            group_name(epoch),
            reason,
            extra={"from_group": group_name(self.epoch), "to_group": group_name(epoch)},
        )
        await self.give_up(sorted(self.owned))
        await self._leave()
        self.epoch = epoch
        await self._join()

    async def _poll(self, paused: bool = False) -> dict[TopicPartition, list[Any]]:
        """One batch, or nothing after POLL_BOUND_SECONDS. Cancelling `getmany` is safe: it
        only awaits before it drains any record, never after. While the consumer is paused
        (quiet) the loop waits up to the bound, not 100 ms: records after a resume end the wait
        as soon as they are fetched, and an idle worker need not turn ten times a second."""
        assert self.consumer is not None
        try:
            return await asyncio.wait_for(
                self.consumer.getmany(
                    timeout_ms=int(POLL_BOUND_SECONDS * 900) if paused else 100,
                    max_records=BATCH_MAX,
                ),
                timeout=POLL_BOUND_SECONDS,
            )
        except TimeoutError:
            return {}

    async def _decide(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Apply a fetched batch; await every output's ack; then commit and maybe snapshot."""
        assert self.consumer is not None
        async with self.deciding:  # a rebalance meanwhile waits for the batch (see give_up)
            touched = await self._apply(batch)
        self.uncommitted.update(touched)
        if self.uncommitted and time.monotonic() - self.committed_at >= COMMIT_EVERY_SECONDS:
            await self.commit()
        for tp in touched:
            async with self.deciding:
                owned = self.owned.get(tp.partition)  # None: given up meanwhile (and snapshotted)
                if owned is not None and self.since_snapshot.get(tp.partition, 0) >= (
                    self.settings.snapshot_events
                ):
                    await self.snapshot(owned)

    async def _apply(self, batch: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, int]:
        """Apply the batch to the partitions still owned and wait for every output's ack."""
        pending = []
        touched: dict[TopicPartition, int] = {}
        for tp, messages in batch.items():
            proc = self.owned.get(tp.partition)
            if proc is None:
                continue  # given up in a rebalance since it was fetched
            for message in messages:
                if message.offset < proc.next_offset:
                    continue
                for out in process(proc, Record.of(message)):
                    pending.append(await self._send(out))
                proc.next_offset = message.offset + 1
                self.applied += 1
                self.since_snapshot[tp.partition] = self.since_snapshot.get(tp.partition, 0) + 1
            touched[tp] = proc.next_offset
        for sent in pending:
            await sent
        return touched

    async def commit(self) -> None:
        """Commit the positions reached (for lag monitoring only)."""
        assert self.consumer is not None
        positions, self.uncommitted = self.uncommitted, {}
        positions = {tp: o for tp, o in positions.items() if tp.partition in self.owned}
        self.committed_at = time.monotonic()
        if not positions:
            return
        try:  # a new owner rebuilds from its snapshot anyway
            await self.consumer.commit(
                {tp: OffsetAndMetadata(o, "") for tp, o in positions.items()}
            )
        except KafkaError as exc:
            log.warning("offset commit failed (rebalancing)", extra={"error": repr(exc)})


def _read(bootstrap: str, starts: dict[tuple[str, int], int], cut: int) -> list[Record]:
    return list(read_from(bootstrap, starts, written_before_ms=cut))


def _anchor_mismatch(bootstrap: str, partition: int, anchor: Anchor) -> str | None:
    """Why the log this broker holds is not the one a snapshot was taken from, or None.

    A snapshot names its last input by offset and event id. Offsets alone are not enough: a
    broker that forgot and was restored renumbers each partition from the archive, and only
    archived inputs come back, so the same offset may hold another input or none at all."""
    records = read_from(bootstrap, {(MATCHER_INPUTS.name, partition): anchor.offset})
    with contextlib.closing(records):
        found = next(records, None)
    if found is None or found.offset != anchor.offset:
        return f"matcher.inputs[{partition}] holds no input at offset {anchor.offset}"
    try:
        event_id = decode(found.value, found.event_type).event_id
    except DecodeError:
        event_id = None
    if event_id != anchor.event_id:
        return (
            f"the input at matcher.inputs[{partition}] offset {anchor.offset} is {event_id},"
            f" not the snapshot's last input {anchor.event_id}"
        )
    return None


def main(settings: Settings, name: str) -> None:
    """Run one matcher worker in the foreground until SIGINT or SIGTERM."""
    logs.configure(name, settings.log_level, settings.log_json)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        taskdump.install(loop)
        await MatcherWorker(settings, name).run(stop)

    asyncio.run(_main())


__all__ = ["MatcherWorker", "main"]
