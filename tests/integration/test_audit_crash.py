"""kill -9 the ledger in the middle of its batches while a producer writes, restart it: every
event is archived exactly once, positions are right, and the chain and checkpoints verify; a
kill between a batch's intent and its commit (services/ledger/head.py) never stops the restart,
and the witness directory ends up with every checkpoint and the archive's head."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import asyncpg
import pytest

from services.audit.evidence.database import stored_checkpoints, verify_archive
from services.audit.evidence.keys import load_key
from services.audit.evidence.ledger_head import read_record
from services.audit.evidence.witness import read_witness
from services.embedded.broker import EmbeddedBroker
from services.platform.kafka import ensure_topics
from tests.integration.test_ledger import EVENTS_ARCHIVED, needs, publish, wait_until

pytestmark = pytest.mark.integration

EVENTS, CHUNK = 3000, 300


def start_ledger(bootstrap: str, database_url: str, var: Path) -> subprocess.Popen[bytes]:
    """The ledger as production runs it: its own process, small batches, frequent checkpoints."""
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": database_url,
        "EXCHANGE_VAR_DIR": str(var),
        "EXCHANGE_LEDGER_BATCH_SIZE": "250",
        "EXCHANGE_CHECKPOINT_EVERY_EVENTS": "400",
    }
    with open(var / "ledger.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "services.cli", "services", "run", "ledger"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def test_kill_minus_nine_mid_batch_loses_and_doubles_nothing_and_verifies(
    broker: EmbeddedBroker, database_url: str, db: asyncpg.Connection, tmp_path: Path
) -> None:
    ensure_topics(broker.bootstrap)
    published: list[uuid.UUID] = []

    def produce() -> None:  # a steady writer, in chunks, while the ledger is killed
        for _ in range(EVENTS // CHUNK):
            published.extend(publish(broker.bootstrap, "needs.events", needs(CHUNK)))

    writer = threading.Thread(target=produce)
    writer.start()
    try:
        for killed_after in (600, 1800):
            ledger = start_ledger(broker.bootstrap, database_url, tmp_path)
            try:
                await wait_until_at_least(db, killed_after)
            finally:
                ledger.send_signal(signal.SIGKILL)
                ledger.wait(10)
            at_kill = await db.fetchval(EVENTS_ARCHIVED)
            assert killed_after <= at_kill < EVENTS, "killed while it still had events to archive"
    finally:
        writer.join()

    ledger = start_ledger(broker.bootstrap, database_url, tmp_path)
    try:
        await wait_until(db, EVENTS_ARCHIVED, EVENTS, within=90)
        await wait_until(db, "SELECT count(*) FROM rm_needs", EVENTS)
    finally:
        ledger.send_signal(signal.SIGTERM)  # a clean stop signs what is left
        assert ledger.wait(30) == 0, (tmp_path / "ledger.log").read_text()[-3000:]

    archived = [
        r["event_id"]
        for r in await db.fetch("SELECT event_id FROM archive WHERE topic = 'needs.events'")
    ]
    assert len(archived) == len(set(archived)) == EVENTS  # none doubled
    assert set(archived) == set(published)  # none lost
    assert (
        await db.fetchval(
            "SELECT sum(next_offset) FROM consumer_positions WHERE topic = 'needs.events'"
        )
        == EVENTS
    )
    key = load_key(tmp_path / "keys" / "ledger-ed25519.pem").public_key()
    finding, summary = await verify_archive(db, key)
    assert finding is None, str(finding)
    assert summary.checkpoints >= 3 and summary.events >= EVENTS
    assert summary.last_signed is not None
    unsigned = await db.fetch(  # after the last signed head: only checkpoint events themselves
        "SELECT topic FROM archive ORDER BY archive_seq OFFSET $1",
        summary.last_signed.head.tree_size,
    )
    assert {r["topic"] for r in unsigned} <= {"ledger.checkpoints"}
    assert await db.fetchval("SELECT count(*) FROM checkpoints WHERE published_at IS NULL") == 0

    # and outside the database: a file for every checkpoint, the head where the archive ends
    witness = read_witness(tmp_path / "witness")
    assert sorted(witness.checkpoints, key=lambda cp: cp.head.tree_size) == (
        await stored_checkpoints(db)
    )
    assert witness.head_file is not None
    head = read_record(witness.head_file)
    newest = await db.fetchrow(
        "SELECT archive_seq, chain_hash FROM archive ORDER BY archive_seq DESC LIMIT 1"
    )
    assert head is not None and head.pending is None
    assert (head.committed.archive_seq, head.committed.chain_hash) == tuple(newest)
    finding, _ = await verify_archive(
        db, key, held=list(witness.checkpoints), ledger_heads=[witness.head_file]
    )
    assert finding is None, str(finding)


async def wait_until_at_least(db: asyncpg.Connection, n: int, within: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while await db.fetchval(EVENTS_ARCHIVED) < n:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"fewer than {n} events archived after {within} s")
        await asyncio.sleep(0.02)
