"""The ledger service: reads every topic from positions kept in PostgreSQL and archives batches.

It is a plain aiokafka consumer, not a faust agent: its positions must commit in the same
PostgreSQL transaction as its rows, which faust's Kafka-committed offsets cannot give.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from schemas.topics import LEDGER_CHECKPOINTS, all_topic_names, partitions_of
from services.audit.evidence.database import stored_rotations
from services.audit.evidence.keys import KeyRefused, key_path, ledger_key
from services.audit.evidence.ledger_head import HEAD_FILE
from services.audit.evidence.rotation import Rotation
from services.ledger.archive import (
    archive_batch,
    hash_legacy_rows,
    hold_back_decisions,
    load_positions,
    prepare,
)
from services.ledger.checkpoints import TOPIC, Checkpointer
from services.ledger.head import ForeignArchive, LedgerHead
from services.ledger.key_rotation import (
    hand_over,
    handed_over,
    publish_rotations,
    write_rotation_files,
)
from services.ledger.set_aside import publish_set_aside
from services.ledger.witness import Witness, witness_path
from services.platform import logs, quiet, taskdump
from services.platform.db import Heartbeat, connect, connect_pool, migrate
from services.platform.kafka import Record, client_security, ensure_topics
from services.settings import Settings

log = logging.getLogger(__name__)


async def run_ledger(settings: Settings, stop: asyncio.Event) -> None:
    """Archive until `stop` is set. Ready once a fetch came back empty (caught up)."""
    dsn, bootstrap = settings.require_database(), settings.require_kafka()
    await migrate(dsn)
    await asyncio.to_thread(ensure_topics, bootstrap)
    conn = await connect(dsn)
    signed_by = await conn.fetchval(
        "SELECT key_id FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
    )
    try:
        await hand_over(conn, key_path(settings))  # when `exchange ledger rotate-key` left one
        rotations = await stored_rotations(conn)
        key = ledger_key(key_path(settings), signed_by, handed_over(rotations))
    except KeyRefused as exc:
        await conn.close()
        log.error("refusing to start: %s", exc)
        raise SystemExit(f"ledger: {exc}") from None
    pool = await connect_pool(dsn, max_size=2)
    beat = Heartbeat(pool, "ledger", settings.heartbeat_seconds)
    beat.start()
    await prepare(conn)
    hashed = await hash_legacy_rows(conn)
    if hashed:
        log.info("hashed rows archived before hashing existed", extra={"rows": hashed})
    witness = Witness(witness_path(settings))
    head = LedgerHead(witness.directory / HEAD_FILE)
    try:  # the archive must end where this ledger left it (services/ledger/head.py)
        await head.resume(conn)
        checkpoints = await Checkpointer.load(
            conn,
            key,
            settings.checkpoint_every_events,
            settings.checkpoint_every_seconds,
        )
        await head.settle(conn, checkpoints.tree.size, checkpoints.tree.last_seq)
    except ForeignArchive as exc:
        await beat.stop()
        await conn.close()
        await pool.close()
        raise _refuse(exc) from None
    publisher = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", **client_security(settings, "aiokafka")
    )
    await publisher.start()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.ledger_fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        **client_security(settings, "aiokafka"),
    )
    await consumer.start()
    idle = quiet.from_settings(settings, *quiet.pausing(lambda: consumer))
    quieting = quiet.start(idle, dsn)
    try:
        await witness.catch_up(conn)  # before the broker: files a crash or a full disk left out
        await _witness_rotations(witness.directory, rotations)
        await publish_rotations(conn, publisher, TOPIC, LEDGER_CHECKPOINTS.owner)
        await checkpoints.publish_pending(conn, publisher)
        await publish_set_aside(conn, publisher)  # what a crash left unpublished
        positions = await load_positions(conn)
        parts = [TopicPartition(t, p) for t in all_topic_names() for p in range(partitions_of(t))]
        consumer.assign(parts)
        for tp in parts:
            if (tp.topic, tp.partition) in positions:
                consumer.seek(tp, positions[(tp.topic, tp.partition)])
            else:
                await consumer.seek_to_beginning(tp)
        archived = 0
        fetched = settings.ledger_batch_size  # nothing fetched yet: not caught up
        started = time.monotonic()
        while not stop.is_set():
            if (
                not beat.ready
                and fetched < settings.ledger_batch_size
                and await caught_up(consumer, parts)
            ):
                # Caught up: the last fetch (archived by now) did not fill a batch, and every
                # partition has been read to the high-water mark its last fetch reported.
                # (Waiting for a fetch to come back empty never ends under a steady load: the
                # ledger stayed "not ready" for minutes after a restore, archiving 45 events/s.)
                beat.ready = True
                await beat.beat()
                log.info("ready: caught up", extra={"archived": archived})
            # paused (quiet): wait longer between turns; records after a resume end the wait
            wait_ms = 1000 if idle is not None and idle.state.paused else 200
            batch = await consumer.getmany(
                timeout_ms=wait_ms, max_records=settings.ledger_batch_size
            )
            fetched = sum(len(messages) for messages in batch.values())
            if idle is not None:
                idle.saw(quiet.work_in(m.headers for ms in batch.values() for m in ms))
            records = [
                Record.of(m)
                for tp in sorted(batch, key=lambda t: (t.topic, t.partition))
                for m in batch[tp]
            ]
            records, held = await hold_back_decisions(conn, records)
            for (topic, partition), offset in held.items():
                consumer.seek(TopicPartition(topic, partition), offset)
            if checkpoints.due():
                await checkpoints.record(conn)
                await witness.catch_up(conn)
                await checkpoints.publish_pending(conn, publisher)
            if held and not records:
                await asyncio.sleep(0.01)  # the inputs are on their way
                continue
            if not records:
                continue
            try:
                new = await archive_batch(conn, records, checkpoints.tree, head)
            except ForeignArchive as exc:  # nothing of the batch was written, nothing signed
                raise _refuse(exc) from None
            if new:  # events set aside in that batch go to their dead-letter topics now
                await publish_set_aside(conn, publisher)
            checkpoints.count(new, records)
            archived += new
            beat.details = {
                "archived": archived,
                "rate": round(archived / max(time.monotonic() - started, 1e-9), 1),
                "tree_size": checkpoints.tree.size,
            }
        if checkpoints.pending:  # a clean stop signs what it archived
            await checkpoints.record(conn)
            await witness.catch_up(conn)
            try:  # never hold up a stop for the broker: the next start publishes it
                await asyncio.wait_for(checkpoints.publish_pending(conn, publisher), 5)
            except Exception as exc:
                log.warning("checkpoint not published at stop", extra={"error": repr(exc)})
    finally:
        for task in quieting:
            task.cancel()
        await publisher.stop()
        await consumer.stop()
        await beat.stop()
        await conn.close()
        await pool.close()


async def _witness_rotations(directory: Path, rotations: list[Rotation]) -> None:
    """Each key hand-over's file in the witness directory; retried at the next start."""
    try:
        await asyncio.to_thread(write_rotation_files, directory, rotations)
    except OSError as exc:
        log.warning(
            "key rotation not written to the witness directory; will retry at the next start",
            extra={"witness_dir": str(directory), "error": repr(exc)},
        )


def _refuse(exc: ForeignArchive) -> SystemExit:
    """Stop rather than sign rows the ledger did not write: logged, and the exit message."""
    log.error("refusing to run: %s", exc)
    return SystemExit(f"ledger: {exc}")


async def caught_up(consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> bool:
    """Whether every partition has been fetched at least once and read up to the high-water
    mark that fetch reported. Tansu reports high-water marks short by up to a batch, so this
    can say "caught up" a batch early: readiness only, never a correctness decision; /healthz
    watches the archive's lag separately."""
    for tp in parts:
        high = consumer.highwater(tp)
        if high is None or await consumer.position(tp) < high:
            return False
    return True


def main(settings: Settings) -> None:
    """Run the ledger in the foreground until SIGINT or SIGTERM."""
    logs.configure("ledger", settings.log_level, settings.log_json)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        taskdump.install(loop)
        await run_ledger(settings, stop)

    asyncio.run(_main())
