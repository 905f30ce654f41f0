"""Tamper evidence on a real archive: events go through the real ledger (real broker, real
PostgreSQL); then rows are changed, deleted, inserted and swapped in the database, and
`exchange audit verify` names the first broken event each time, and passes when untouched."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.evidence import chain, checkpoint
from services.audit.evidence.archive_row import ROW_COLUMNS, row_of
from services.audit.evidence.database import (
    compare_with_topics,
    prove,
    stored_checkpoints,
    verify_archive,
)
from services.audit.evidence.keys import load_key
from services.audit.evidence.ledger_head import HEAD_FILE, Head, HeadRecord, read_record
from services.audit.evidence.proofs import checkpoint_from_json, proof_document, proof_problem
from services.audit.replay.derived import verify_derived
from services.audit.replay.simulate import simulate
from services.demo.city import generate
from services.embedded.broker import EmbeddedBroker
from services.embedded.postgres import EmbeddedPostgres
from services.ledger.archive import archive_batch, prepare
from services.ledger.checkpoints import Checkpointer
from services.ledger.head import ForeignArchive, LedgerHead, write_record
from services.ledger.service import run_ledger
from services.ledger.witness import checkpoint_file_name
from services.platform.access import PRODUCER_HEADER, writer_of
from services.platform.db import connect, migrate
from services.platform.kafka import Record, ensure_topics, set_producer
from services.settings import Settings
from tests.integration.test_ledger import EVENTS_ARCHIVED, needs, publish, wait_until

pytestmark = pytest.mark.integration

REWORD = (
    "UPDATE archive SET value = convert_to(replace(convert_from(value, 'UTF8'), '需求', '需要'),"
    " 'UTF8') WHERE archive_seq = $1"
)
"""Change one word in an archived event's JSON, as an editor of the table could."""


@dataclass(frozen=True)
class Archived:
    """A database the real ledger archived into, kept as a template; each test gets a copy."""

    template: str
    admin_url: str
    bootstrap: str
    key: Ed25519PublicKey
    key_file: Path
    witness: Path
    """The ledger's witness directory (checkpoint files and ledger-head.json)."""

    def url(self, name: str) -> str:
        return self.admin_url.replace("/postgres?", f"/{name}?")


@pytest.fixture(scope="module")
def archived(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Archived]:
    """60 events archived in three rounds (a checkpoint after each), then a clean stop."""
    tmp = tmp_path_factory.mktemp("audit")
    broker = EmbeddedBroker.start(tmp / "broker.log")
    name = f"audit_{uuid.uuid4().hex[:8]}"
    url = postgres.admin_url.replace("/postgres?", f"/{name}?")
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        DATABASE_URL=url,
        var_dir=tmp,
        checkpoint_every_events=20,
    )

    async def archive() -> None:
        admin = await asyncpg.connect(postgres.admin_url)
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        await admin.close()
        await migrate(url)
        ensure_topics(broker.bootstrap)
        conn = await connect(url)
        stop = asyncio.Event()
        task = asyncio.create_task(run_ledger(settings, stop))
        for round_ in range(1, 4):
            set_producer("intake-needs")  # as needs.events' writer stamps them (verify checks)
            publish(broker.bootstrap, "needs.events", needs(20))
            set_producer(None)
            await wait_until(conn, EVENTS_ARCHIVED, 20 * round_)
            await wait_until(conn, "SELECT count(*) >= 1 FROM checkpoints"
                             f" WHERE tree_size >= {20 * round_}", True)  # fmt: skip
        stop.set()
        await task
        await conn.close()

    asyncio.run(archive())
    try:
        key_file = tmp / "keys" / "ledger-ed25519.pem"
        yield Archived(
            name,
            postgres.admin_url,
            broker.bootstrap,
            load_key(key_file).public_key(),
            key_file,
            tmp / "witness",
        )
    finally:
        broker.process.kill()
        broker.process.wait()


@pytest.fixture
async def copy(archived: Archived) -> AsyncIterator[asyncpg.Connection]:
    """A connection to a fresh copy of the archived database, to tamper with."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(archived.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{archived.template}"')
    await admin.close()
    conn = await connect(archived.url(name))
    yield conn
    await conn.close()


async def seqs(conn: asyncpg.Connection) -> list[int]:
    return [
        r["archive_seq"] for r in await conn.fetch("SELECT archive_seq FROM archive ORDER BY 1")
    ]


async def test_the_untouched_archive_verifies(copy: asyncpg.Connection, archived: Archived) -> None:
    finding, summary = await verify_archive(copy, archived.key)
    assert finding is None
    assert summary.events == await copy.fetchval("SELECT count(*) FROM archive") >= 60
    assert summary.checkpoints >= 3
    assert summary.last_signed is not None and summary.last_signed.head.tree_size >= 60
    assert await copy.fetchval("SELECT count(*) FROM archive WHERE chain_hash IS NULL") == 0


async def test_a_changed_value_is_named(copy: asyncpg.Connection, archived: Archived) -> None:
    target = (await seqs(copy))[30]
    await copy.execute(REWORD, target)
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("changed", target)
    assert finding.event_id == await copy.fetchval(
        "SELECT event_id FROM archive WHERE archive_seq = $1", target
    )


async def test_a_deleted_row_is_missing_before_the_next(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    all_seqs = await seqs(copy)
    await copy.execute("DELETE FROM archive WHERE archive_seq = $1", all_seqs[25])
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("missing", all_seqs[26])


async def test_deleted_rows_at_the_end_are_missing(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    """No row follows them, but a signed checkpoint covers them."""
    signed = await copy.fetchval("SELECT max(tree_size) FROM checkpoints")
    last_kept = (await seqs(copy))[signed - 3]
    await copy.execute("DELETE FROM archive WHERE archive_seq > $1", last_kept)
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("missing", last_kept)


async def shift_after(conn: asyncpg.Connection, seq: int) -> None:
    """Make room for a row after `seq`, as someone inserting into the middle would."""
    await conn.execute("UPDATE archive SET archive_seq = -archive_seq WHERE archive_seq > $1", seq)
    await conn.execute("UPDATE archive SET archive_seq = 1 - archive_seq WHERE archive_seq < 0")


async def insert_copy_of(
    conn: asyncpg.Connection, seq: int, at: int, hashes: tuple[bytes, bytes] | None
) -> None:
    await conn.execute(
        "INSERT INTO archive (archive_seq, event_id, topic, kafka_partition, kafka_offset,"
        " kafka_key, value, headers, event_type, stream_id, stream_seq, recorded_at,"
        " content_hash, chain_hash)"
        " SELECT $2, $3, topic, kafka_partition, kafka_offset, kafka_key, value, headers,"
        " event_type, stream_id, stream_seq, recorded_at, $4, $5 FROM archive"
        " WHERE archive_seq = $1",
        seq,
        at,
        uuid.uuid4(),
        *(hashes or (None, None)),
    )


async def test_an_inserted_row_is_named(copy: asyncpg.Connection, archived: Archived) -> None:
    before = (await seqs(copy))[20]
    await shift_after(copy, before)
    await insert_copy_of(copy, before, before + 1, None)
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("inserted", before + 1)


async def test_an_inserted_row_with_forged_hashes_is_named(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    """Whoever inserts can compute a content hash and link it; the next row still does not."""
    before = (await seqs(copy))[20]
    await shift_after(copy, before)
    await insert_copy_of(copy, before, before + 1, (b"", b""))
    r = await copy.fetchrow(f"SELECT {ROW_COLUMNS} FROM archive WHERE archive_seq = $1", before + 1)
    content = chain.content_hash(row_of(r))
    previous = await copy.fetchval("SELECT chain_hash FROM archive WHERE archive_seq = $1", before)
    await copy.execute(
        "UPDATE archive SET content_hash = $2, chain_hash = $3 WHERE archive_seq = $1",
        before + 1,
        content,
        chain.link(previous, content),
    )
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("inserted", before + 1)


async def test_two_swapped_rows_are_reordered(copy: asyncpg.Connection, archived: Archived) -> None:
    a, b = (await seqs(copy))[40:42]
    await copy.execute("UPDATE archive SET archive_seq = -1 WHERE archive_seq = $1", a)
    await copy.execute("UPDATE archive SET archive_seq = $1 WHERE archive_seq = $2", a, b)
    await copy.execute("UPDATE archive SET archive_seq = $1 WHERE archive_seq = -1", b)
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("reordered", a)


async def test_two_rows_with_swapped_contents_are_changed(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    a, b = (await seqs(copy))[10:12]
    await copy.execute(
        "UPDATE archive x SET value = y.value FROM archive y"
        " WHERE (x.archive_seq, y.archive_seq) IN (($1, $2), ($2, $1))",
        a,
        b,
    )
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("changed", a)


async def test_a_rewrite_with_recomputed_hashes_breaks_the_signed_checkpoint(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    """Hashes alone can be recomputed by whoever edits the table; the signature cannot."""
    all_seqs = await seqs(copy)
    target = all_seqs[5]
    await copy.execute(REWORD, target)
    previous = await copy.fetchval(
        "SELECT chain_hash FROM archive WHERE archive_seq = $1", all_seqs[4]
    )
    for r in await copy.fetch(
        f"SELECT {ROW_COLUMNS} FROM archive WHERE archive_seq >= $1 ORDER BY archive_seq", target
    ):
        content = chain.content_hash(row_of(r))
        previous = chain.link(previous, content)
        await copy.execute(
            "UPDATE archive SET content_hash = $2, chain_hash = $3 WHERE archive_seq = $1",
            r["archive_seq"],
            content,
            previous,
        )
    first_signed = await copy.fetchval("SELECT min(tree_size) FROM checkpoints")
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and finding.kind == "changed"
    assert finding.archive_seq == all_seqs[first_signed - 1]  # where the first signed head is
    assert "rewritten" in finding.detail


async def test_a_checkpoint_signed_with_another_key_is_rejected(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    r = await copy.fetchrow("SELECT * FROM checkpoints ORDER BY tree_size LIMIT 1")
    head = checkpoint.TreeHead(r["tree_size"], r["root_hash"], r["chain_hash"])
    forged = checkpoint.sign(head, Ed25519PrivateKey.generate())
    await copy.execute(
        "UPDATE checkpoints SET signature = $2, key_id = $3 WHERE tree_size = $1",
        head.tree_size,
        forged.signature,
        forged.key_id,
    )
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and finding.kind == "checkpoint" and "unknown key" in finding.detail
    # and the untouched archive does not verify under somebody else's key either
    finding, _ = await verify_archive(copy, Ed25519PrivateKey.generate().public_key())
    assert finding is not None and finding.kind == "checkpoint"


async def test_a_consistency_proof_between_checkpoints_verifies_with_the_public_key(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    sizes = [
        r["tree_size"] for r in await copy.fetch("SELECT tree_size FROM checkpoints ORDER BY 1")
    ]
    old, new, proof = await prove(copy, sizes[0], None)
    doc = proof_document(old, new, proof)
    assert new.head.tree_size == sizes[-1]
    assert proof_problem(doc, archived.key) is None
    doc["new"]["root_hash"] = hashlib.sha256(b"another history").hexdigest()
    assert "not validly signed" in (proof_problem(doc, archived.key) or "")


async def test_the_topics_agree_with_the_archive_and_a_changed_row_is_caught(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    finding, unarchived = await compare_with_topics(copy, archived.bootstrap)
    assert finding is None
    assert unarchived <= 1  # at most the last checkpoint, if published just before the stop
    target = (await seqs(copy))[7]
    await copy.execute(REWORD, target)
    finding, _ = await compare_with_topics(copy, archived.bootstrap)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("changed", target)


def test_the_command_exits_non_zero_naming_the_first_broken_event(archived: Archived) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def tamper() -> tuple[int, uuid.UUID]:
        admin = await asyncpg.connect(archived.admin_url)
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{archived.template}"')
        await admin.close()
        conn = await connect(archived.url(name))
        seq, event_id = await conn.fetchrow(
            "SELECT archive_seq, event_id FROM archive ORDER BY archive_seq OFFSET 12 LIMIT 1"
        )
        await conn.execute(
            "DELETE FROM archive WHERE archive_seq < $1 AND archive_seq > $1 - 2", seq
        )
        await conn.close()
        return seq, event_id

    env = {**os.environ, "EXCHANGE_AUDIT_KEY_PATH": str(archived.key_file)}
    args = [
        sys.executable,
        "-m",
        "services.cli",
        "audit",
        "verify",
        "--public-key",
        published_key(env),
        "--database-url",
        archived.url(name),
    ]
    clean = subprocess.run(
        [*args[:-1], archived.url(archived.template)], env=env, capture_output=True, text=True
    )
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "archive verified" in clean.stdout and "signed checkpoints match" in clean.stdout
    seq, event_id = asyncio.run(tamper())
    broken = subprocess.run(args, env=env, capture_output=True, text=True)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert f"missing: archive_seq {seq}, event {event_id}, topic needs.events" in broken.stdout


async def test_rows_archived_before_hashing_existed_are_hashed_in_order(
    db: asyncpg.Connection,
) -> None:
    """An archive from before migration 0004: the ledger hashes its rows at start, in
    archive_seq order, and the chain then runs on through new rows."""
    from services.ledger.archive import archive_batch, hash_legacy_rows, prepare
    from services.ledger.checkpoints import Checkpointer
    from services.platform.kafka import Record

    def record(offset: int) -> Record:
        return Record(
            "clock.ticks", 0, offset, b"z", b"{}", (("event_id", str(uuid.uuid4()).encode()),)
        )

    await prepare(db)
    await archive_batch(db, [record(i) for i in range(5)])
    await db.execute("UPDATE archive SET content_hash = NULL, chain_hash = NULL")  # as before 0004
    await db.execute("UPDATE archive_legacy SET until_seq = (SELECT max(archive_seq) FROM archive)")
    assert await hash_legacy_rows(db) == 5
    await archive_batch(db, [record(i) for i in range(5, 8)])
    key = Ed25519PrivateKey.generate()
    finding, _ = await verify_archive(db, key.public_key())
    assert finding is not None and finding.kind == "unsigned"  # fails closed until signed
    assert await (await Checkpointer.load(db, key, 1000, 60)).record(db) is not None
    finding, summary = await verify_archive(db, key.public_key())
    assert finding is None and summary.events == 8

    # a row without hashes after that is no legacy row: it stays unhashed, and is reported
    await db.execute("UPDATE archive SET content_hash = NULL WHERE archive_seq = 7")
    assert await hash_legacy_rows(db) == 0
    finding, _ = await verify_archive(db, key.public_key())
    assert finding is not None and (finding.kind, finding.archive_seq) == ("inserted", 7)


def test_the_signing_key_is_created_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    from services.audit.evidence.keys import load_or_create_key

    path = tmp_path / "keys" / "ledger-ed25519.pem"
    first = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create_key(path)
    assert checkpoint.raw_public_key(again.public_key()) == checkpoint.raw_public_key(
        first.public_key()
    )


def test_prove_and_verify_proof_on_the_command_line(archived: Archived, tmp_path: Path) -> None:
    env = {**os.environ, "EXCHANGE_AUDIT_KEY_PATH": str(archived.key_file)}
    exchange = [sys.executable, "-m", "services.cli", "audit"]
    url = archived.url(archived.template)
    first = asyncio.run(first_checkpoint_size(url))
    proof = subprocess.run(
        [*exchange, "prove", "--from-size", str(first), "--database-url", url],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proof.returncode == 0, proof.stderr
    (tmp_path / "proof.json").write_text(proof.stdout)
    public = checkpoint.raw_public_key(archived.key).hex()
    checked = subprocess.run(
        [*exchange, "verify-proof", str(tmp_path / "proof.json"), "--public-key", public],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"extends the signed log of {first} events" in checked.stdout


async def first_checkpoint_size(url: str) -> int:
    conn = await connect(url)
    try:
        size: int = await conn.fetchval("SELECT min(tree_size) FROM checkpoints")
        return size
    finally:
        await conn.close()


async def test_a_row_inserted_before_the_first_is_named(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    first = (await seqs(copy))[0]
    await insert_copy_of(copy, first, first - 1, (b"", b""))
    r = await copy.fetchrow(f"SELECT {ROW_COLUMNS} FROM archive WHERE archive_seq = $1", first - 1)
    content = chain.content_hash(row_of(r))
    await copy.execute(
        "UPDATE archive SET content_hash = $2, chain_hash = $3 WHERE archive_seq = $1",
        first - 1,
        content,
        chain.link(chain.GENESIS, content),
    )
    finding, _ = await verify_archive(copy, archived.key)
    assert finding is not None and (finding.kind, finding.archive_seq) == ("inserted", first - 1)


async def test_the_ledger_resumes_its_tree_from_the_latest_checkpoint(
    copy: asyncpg.Connection,
) -> None:
    """At start the ledger reads only the rows after its latest checkpoint (whose frontier it
    stored), not every content hash: an edit below that point leaves its tree on the signed
    history. With no usable frontier it rebuilds from every row, as older versions did."""
    from services.audit.evidence.merkle import leaf_hash, root
    from services.ledger.checkpoints import Checkpointer

    async def contents() -> list[bytes]:
        return [
            r[0] for r in await copy.fetch("SELECT content_hash FROM archive ORDER BY archive_seq")
        ]

    latest = await copy.fetchrow(
        "SELECT tree_size, last_seq, cardinality(frontier) AS peaks FROM checkpoints"
        " ORDER BY tree_size DESC LIMIT 1"
    )
    assert latest["peaks"] == int(latest["tree_size"]).bit_count()
    signed = root([leaf_hash(c) for c in await contents()])
    key = Ed25519PrivateKey.generate()

    loaded = await Checkpointer.load(copy, key, 20, 60)
    assert (loaded.tree.size, loaded.tree.root()) == (len(await contents()), signed)
    assert not loaded.due()  # nothing but checkpoint events after the last checkpoint

    first = await copy.fetchval("SELECT min(archive_seq) FROM archive")
    await copy.execute(
        "UPDATE archive SET content_hash = $2 WHERE archive_seq = $1",
        first,
        hashlib.sha256(b"forged").digest(),
    )
    assert first < latest["last_seq"]
    resumed = await Checkpointer.load(copy, key, 20, 60)
    assert resumed.tree.root() == signed, "the edited row below the checkpoint was not re-read"

    await copy.execute("UPDATE checkpoints SET frontier = frontier[1:0]")  # unusable: rebuild
    rebuilt = await Checkpointer.load(copy, key, 20, 60)
    assert rebuilt.tree.root() == root([leaf_hash(c) for c in await contents()]) != signed


async def test_rows_another_ledger_archived_between_batches_are_in_the_tree(
    db: asyncpg.Connection,
) -> None:
    """Two ledgers overlapping (a deploy): each takes the other's rows into its tree, in
    archive order, so what it signs is the archive and a restart resumes from the truth."""
    from services.audit.evidence.merkle import leaf_hash, root
    from services.ledger.archive import archive_batch, prepare
    from services.ledger.checkpoints import Checkpointer
    from services.platform.kafka import Record

    def record(offset: int) -> Record:
        return Record(
            "clock.ticks", 0, offset, b"z", b"{}", (("event_id", str(uuid.uuid4()).encode()),)
        )

    key = Ed25519PrivateKey.generate()
    await prepare(db)
    ours = await Checkpointer.load(db, key, 1000, 60)
    await archive_batch(db, [record(i) for i in range(5)], ours.tree)
    await archive_batch(db, [record(i) for i in range(5, 10)])  # the other ledger's batch
    await archive_batch(db, [record(i) for i in range(10, 15)], ours.tree)

    hashes = [r[0] for r in await db.fetch("SELECT content_hash FROM archive ORDER BY archive_seq")]
    assert (ours.tree.size, ours.tree.root()) == (15, root([leaf_hash(h) for h in hashes]))
    assert await ours.record(db) is not None
    stored = await db.fetchrow("SELECT tree_size, last_seq FROM checkpoints")
    assert stored["last_seq"] == await db.fetchval("SELECT max(archive_seq) FROM archive")

    resumed = await Checkpointer.load(db, key, 1000, 60)
    assert (resumed.tree.size, resumed.tree.root()) == (ours.tree.size, ours.tree.root())
    finding, summary = await verify_archive(db, key.public_key())
    assert finding is None and summary.events == 15


# --- Failing closed: an insider who removes or re-signs the signed history ---------------------


def published_key(env: dict[str, str]) -> str:
    """The public key as `exchange audit key` prints it for the operator to publish: read once
    and pinned, as an auditor would."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "audit", "key"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = dict(line.split(maxsplit=1) for line in done.stdout.splitlines()[:3])
    return lines["public_key"]


def verify_cli(
    url: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "audit", "verify", "--database-url", url, *extra],
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
    )


async def rehash(conn: asyncpg.Connection) -> None:
    """Recompute every content and chain hash in archive order, as an insider can."""
    previous = chain.GENESIS
    for r in await conn.fetch(f"SELECT {ROW_COLUMNS} FROM archive ORDER BY archive_seq"):
        content = chain.content_hash(row_of(r))
        previous = chain.link(previous, content)
        await conn.execute(
            "UPDATE archive SET content_hash = $2, chain_hash = $3 WHERE archive_seq = $1",
            r["archive_seq"],
            content,
            previous,
        )


async def remove_signed_history(conn: asyncpg.Connection) -> None:
    """Delete every checkpoint and every archived CheckpointRecorded, reword an event and
    rehash the whole chain: nothing left disagrees with anything else."""
    await conn.execute("DELETE FROM checkpoints")
    await conn.execute("DELETE FROM archive WHERE topic = 'ledger.checkpoints'")
    await conn.execute(REWORD, (await seqs(conn))[5])
    await rehash(conn)


def pinned(archived: Archived) -> str:
    return checkpoint.raw_public_key(archived.key).hex()


async def test_no_signed_checkpoint_for_the_events_fails_closed(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    """Tamper row: delete every checkpoint and CheckpointRecorded, rewrite, rehash. The chain
    is consistent again, but events without any signed checkpoint are not verified."""
    await remove_signed_history(copy)
    finding, summary = await verify_archive(copy, archived.key)
    assert summary.checkpoints == 0
    assert finding is not None and finding.kind == "unsigned", finding
    assert f"holds {summary.events} events" in finding.detail
    broken = verify_cli(await dsn_of(copy, archived), "--public-key", pinned(archived))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "BROKEN unsigned: the archive:" in broken.stdout


async def dsn_of(conn: asyncpg.Connection, archived: Archived) -> str:
    return archived.url(str(await conn.fetchval("SELECT current_database()")))


async def test_a_wiped_archive_fails_against_what_the_auditor_holds(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path
) -> None:
    """Tamper row: wipe the archive and the checkpoints. The read models left behind still
    contradict it; wiped too, nothing is left to compare, and 0 events is a clean (empty)
    archive; against a CheckpointRecorded the auditor kept, or a size they expect, it is not."""
    event = await copy.fetchval(
        "SELECT convert_from(value, 'UTF8') FROM archive WHERE topic = 'ledger.checkpoints'"
        " ORDER BY archive_seq DESC LIMIT 1"
    )
    held = tmp_path / "held-checkpoint.json"
    held.write_text(event)
    url = await dsn_of(copy, archived)
    key = ("--public-key", pinned(archived))
    intact = verify_cli(url, *key, "--held", str(held), "--expect-at-least", "60")
    assert intact.returncode == 0, intact.stdout + intact.stderr

    await copy.execute("DELETE FROM archive")
    await copy.execute("DELETE FROM checkpoints")
    leftover = verify_cli(url, *key)
    assert leftover.returncode == 1, leftover.stdout + leftover.stderr
    assert "BROKEN (derived) table rm_needs" in leftover.stdout
    assert "no event in the log produces it" in leftover.stdout
    await copy.execute("TRUNCATE rm_needs, projected_events")  # the thorough insider
    empty = verify_cli(url, *key)
    assert empty.returncode == 0 and "0 events" in empty.stdout, empty.stdout + empty.stderr
    against_held = verify_cli(url, *key, "--held", str(held))
    assert against_held.returncode == 1, against_held.stdout + against_held.stderr
    assert "BROKEN missing" in against_held.stdout and "holds 0 events" in against_held.stdout
    expected = verify_cli(url, *key, "--expect-at-least", "60")
    assert expected.returncode == 1, expected.stdout + expected.stderr
    assert "fewer than the 60 expected" in expected.stdout


async def test_a_held_checkpoint_the_rewritten_archive_does_not_extend_is_named(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    held = (await stored_checkpoints(copy))[0]  # covers the reworded event
    await remove_signed_history(copy)
    finding, _ = await verify_archive(copy, archived.key, held=[held])
    assert finding is not None and finding.kind == "changed" and "rewritten" in finding.detail


async def resign_with(conn: asyncpg.Connection, key: Ed25519PrivateKey) -> None:
    """Re-sign a checkpoint at each stored size over the (rewritten) archive with `key`."""
    from services.audit.evidence.merkle import leaf_hash, root

    rows = await conn.fetch("SELECT content_hash, chain_hash FROM archive ORDER BY archive_seq")
    await conn.execute("DELETE FROM checkpoints WHERE tree_size > $1", len(rows))
    for size in [r[0] for r in await conn.fetch("SELECT tree_size FROM checkpoints")]:
        head = checkpoint.TreeHead(
            size, root([leaf_hash(r["content_hash"]) for r in rows[:size]]), rows[size - 1][1]
        )
        cp = checkpoint.sign(head, key)
        await conn.execute(
            "UPDATE checkpoints SET root_hash = $2, chain_hash = $3, signature = $4, key_id = $5,"
            " frontier = NULL WHERE tree_size = $1",
            size,
            head.root_hash,
            head.chain_hash,
            cp.signature,
            cp.key_id,
        )


async def test_a_replaced_key_and_a_re_signed_history_fail_under_the_pinned_key(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path
) -> None:
    """Tamper row: replace the key file, rewrite history, re-sign everything. Verified with
    the key file it passes, which is why `verify` refuses that file as a trust anchor; under
    the key the operator published it fails."""
    from services.audit.evidence.keys import load_or_create_key

    var = tmp_path / "var"
    forged = load_or_create_key(var / "keys" / "ledger-ed25519.pem")  # the replaced key file
    await copy.execute("DELETE FROM archive WHERE topic = 'ledger.checkpoints'")
    await copy.execute(REWORD, (await seqs(copy))[5])
    await rehash(copy)
    await resign_with(copy, forged)

    finding, _ = await verify_archive(copy, forged.public_key())
    assert finding is None  # the key file beside the data vouches for anything

    url = await dsn_of(copy, archived)
    env = {**os.environ, "EXCHANGE_VAR_DIR": str(var)}
    env.pop("EXCHANGE_AUDIT_PUBLIC_KEY", None)
    no_key = verify_cli(url, env=env)
    assert no_key.returncode == 2 and "no trusted public key" in no_key.stderr, no_key.stderr
    beside = verify_cli(url, "--public-key-file", str(var / "keys" / "ledger-ed25519.pem"), env=env)
    assert beside.returncode == 2 and "no trust anchor" in beside.stderr, beside.stderr

    pin = tmp_path / "published-key.txt"
    pin.write_text(published_key({**os.environ, "EXCHANGE_AUDIT_KEY_PATH": str(archived.key_file)}))
    for trust in (("--public-key-file", str(pin)), ("--public-key", pinned(archived))):
        broken = verify_cli(url, *trust, env=env)
        assert broken.returncode == 1, broken.stdout + broken.stderr
        assert "BROKEN checkpoint" in broken.stdout and "unknown key" in broken.stdout
    via_env = verify_cli(url, env={**env, "EXCHANGE_AUDIT_PUBLIC_KEY": pinned(archived)})
    assert via_env.returncode == 1 and "unknown key" in via_env.stdout


async def test_a_stale_unsigned_tail_fails_closed(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    """Removing the latest checkpoints leaves a tail no checkpoint covers: fine for a moment
    (the ledger signs on its cadence), a finding once it is older than the cadence allows."""
    sizes = sorted(r[0] for r in await copy.fetch("SELECT tree_size FROM checkpoints"))
    await copy.execute("DELETE FROM checkpoints WHERE tree_size > $1", sizes[0])
    await copy.execute(
        "DELETE FROM archive WHERE archive_seq = ANY($1::bigint[]) AND topic = $2",
        (await seqs(copy))[sizes[0] :],
        "ledger.checkpoints",
    )
    await rehash(copy)
    tail = (await seqs(copy))[sizes[0] :]
    finding, _ = await verify_archive(copy, archived.key, unsigned_limit=180)
    assert finding is None  # archived moments ago
    await copy.execute(
        "UPDATE archive SET archived_at = archived_at - interval '1 hour'"
        " WHERE archive_seq = ANY($1::bigint[])",
        tail,
    )
    finding, _ = await verify_archive(copy, archived.key, unsigned_limit=180)
    assert finding is not None and finding.kind == "stale", finding
    assert finding.archive_seq == tail[0] and "not covered by a signed checkpoint" in finding.detail
    broken = verify_cli(await dsn_of(copy, archived), "--public-key", pinned(archived))
    assert broken.returncode == 1 and "BROKEN stale" in broken.stdout, broken.stdout


async def test_the_ledger_refuses_a_missing_or_different_key_once_anything_is_signed(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path
) -> None:
    from services.audit.evidence.keys import KeyRefused, ledger_key

    signed_by = await copy.fetchval(
        "SELECT key_id FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
    )
    path = tmp_path / "keys" / "ledger-ed25519.pem"
    with pytest.raises(KeyRefused, match="restore that key file"):
        ledger_key(path, signed_by)
    assert not path.exists()  # no new key was created
    other = ledger_key(path, None)  # an archive with no checkpoint: a key is created
    with pytest.raises(KeyRefused, match="key change is refused"):
        ledger_key(path, signed_by)
    assert ledger_key(archived.key_file, signed_by) is not None
    assert checkpoint.key_id(other.public_key()) != signed_by

    # and the ledger itself will not start on it
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=archived.bootstrap,
        DATABASE_URL=await dsn_of(copy, archived),
        var_dir=tmp_path / "var",
    )
    with pytest.raises(SystemExit, match="restore that key file"):
        await run_ledger(settings, asyncio.Event())
    assert not (tmp_path / "var" / "keys").exists()


def test_the_key_command_prints_a_fingerprint_to_publish(archived: Archived) -> None:
    env = {**os.environ, "EXCHANGE_AUDIT_KEY_PATH": str(archived.key_file)}
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "audit", "key"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    digest = hashlib.sha256(checkpoint.raw_public_key(archived.key)).hexdigest()
    assert f"public_key  {pinned(archived)}" in out
    assert "fingerprint " + " ".join(digest[i : i + 4] for i in range(0, 64, 4)) in out


async def test_rows_a_crashed_ledger_left_unsigned_are_signed_at_start(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    """Not an interval after the restart: the downtime already counts against the tail."""
    from services.ledger.checkpoints import Checkpointer

    first = await copy.fetchval("SELECT min(tree_size) FROM checkpoints")
    await copy.execute("DELETE FROM checkpoints WHERE tree_size > $1", first)
    loaded = await Checkpointer.load(copy, load_key(archived.key_file), 1000, 3600)
    assert loaded.pending > 0 and loaded.due()


# --- Checkpoints leave the database; the ledger signs only what it wrote ---------------------


def copy_witness(archived: Archived, tmp_path: Path) -> Path:
    """A copy of the ledger's witness directory, to tamper with or to run a ledger on."""
    witness = tmp_path / "witness"
    shutil.copytree(archived.witness, witness)
    return witness


def ledger_on(archived: Archived, url: str, witness: Path, bootstrap: str) -> Settings:
    """The ledger's settings on a copy of the archive: its key, its witness dir, a fresh broker."""
    return Settings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        DATABASE_URL=url,
        var_dir=witness.parent / "var",
        witness_dir=witness,
        audit_key_path=archived.key_file,
    )


async def append_forged_row(conn: asyncpg.Connection) -> int:
    """An insider's row after the newest: a copy of it under a new event id, numbered by the
    archive's own sequence, hashed and linked exactly as the ledger would. Returns its seq."""
    last = max(await seqs(conn))
    forged: int = await conn.fetchval(
        "INSERT INTO archive (event_id, topic, kafka_partition, kafka_offset, kafka_key, value,"
        " headers, event_type, stream_id, stream_seq, recorded_at)"
        " SELECT $2, topic, kafka_partition, kafka_offset, kafka_key, value, headers,"
        " event_type, stream_id, stream_seq, recorded_at FROM archive WHERE archive_seq = $1"
        " RETURNING archive_seq",
        last,
        uuid.uuid4(),
    )
    r = await conn.fetchrow(f"SELECT {ROW_COLUMNS} FROM archive WHERE archive_seq = $1", forged)
    content = chain.content_hash(row_of(r))
    previous = await conn.fetchval("SELECT chain_hash FROM archive WHERE archive_seq = $1", last)
    await conn.execute(
        "UPDATE archive SET content_hash = $2, chain_hash = $3 WHERE archive_seq = $1",
        forged,
        content,
        chain.link(previous, content),
    )
    return forged


async def test_every_checkpoint_is_in_the_witness_dir_with_the_ledgers_head(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    stored = await stored_checkpoints(copy)
    files = sorted(archived.witness.glob("checkpoint-*.json"))
    assert [f.name for f in files] == [checkpoint_file_name(cp.head.tree_size) for cp in stored]
    assert [checkpoint_from_json(json.loads(f.read_text())) for f in files] == stored
    newest = await copy.fetchrow(
        "SELECT archive_seq, chain_hash FROM archive ORDER BY archive_seq DESC LIMIT 1"
    )
    size = await copy.fetchval("SELECT count(*) FROM archive")
    assert read_record(archived.witness / HEAD_FILE) == HeadRecord(Head(*newest, size))


async def test_a_missing_witness_file_is_written_at_start_and_none_is_overwritten(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path, broker: EmbeddedBroker
) -> None:
    witness = copy_witness(archived, tmp_path)
    missing, kept = sorted(witness.glob("checkpoint-*.json"))[:2]
    original = missing.read_text()
    missing.unlink()  # a crash between storing the checkpoint and writing its file
    kept.write_text(kept.read_text().replace('"signature": "', '"signature": "00'))
    tampered = kept.read_text()

    stop = asyncio.Event()
    settings = ledger_on(archived, await dsn_of(copy, archived), witness, broker.bootstrap)
    task = asyncio.create_task(run_ledger(settings, stop))
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while not missing.exists():
            if task.done():
                task.result()
                raise AssertionError("the ledger stopped")
            assert asyncio.get_running_loop().time() < deadline, "the file was not written again"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert missing.read_text() == original
    assert kept.read_text() == tampered  # never overwritten, not even to repair it


async def test_a_witness_dir_that_cannot_be_written_is_retried_never_fatal(
    copy: asyncpg.Connection, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from services.ledger.witness import Witness

    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the directory should be, as a full or read-only disk")
    witness = Witness(blocked / "witness")
    with caplog.at_level(logging.WARNING):
        assert await witness.catch_up(copy) == 0
    assert "will retry" in caplog.text
    blocked.unlink()
    assert await witness.catch_up(copy) == len(await stored_checkpoints(copy))
    assert await witness.catch_up(copy) == 0  # nothing new since


async def test_verify_with_the_witness_passes_and_names_the_file_when_cut_back(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    """Tamper row: delete the tail back to an older checkpoint and the checkpoints above it.
    Nothing in the database contradicts the rest; the witness files do."""
    url, key = await dsn_of(copy, archived), ("--public-key", pinned(archived))
    witness = ("--witness", str(archived.witness))
    files = len(list(archived.witness.glob("checkpoint-*.json")))
    intact = verify_cli(url, *key, *witness)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert f"{files} checkpoints, each signed by the trusted key and consistent" in intact.stdout
    assert "the archive holds none beyond it" in intact.stdout

    sizes = sorted(r[0] for r in await copy.fetch("SELECT tree_size FROM checkpoints"))
    last_kept = (await seqs(copy))[sizes[0] - 1]
    await copy.execute("DELETE FROM archive WHERE archive_seq > $1", last_kept)
    await copy.execute("DELETE FROM checkpoints WHERE tree_size > $1", sizes[0])
    alone = verify_cli(url, *key, "--no-derived")
    assert alone.returncode == 0, alone.stdout  # the archive is consistent with itself
    left = verify_cli(url, *key)  # the read models of the deleted events are not
    assert left.returncode == 1 and "BROKEN (derived) table rm_needs" in left.stdout, left.stdout
    cut = verify_cli(url, *key, *witness)
    assert cut.returncode == 1, cut.stdout + cut.stderr
    assert "BROKEN missing" in cut.stdout, cut.stdout
    assert str(archived.witness / checkpoint_file_name(sizes[1])) in cut.stdout


async def test_verify_with_the_witness_fails_on_a_wiped_archive_and_a_missing_dir(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path
) -> None:
    url, key = await dsn_of(copy, archived), ("--public-key", pinned(archived))
    first = min(r[0] for r in await copy.fetch("SELECT tree_size FROM checkpoints"))
    await copy.execute("DELETE FROM archive")
    await copy.execute("DELETE FROM checkpoints")
    wiped = verify_cli(url, *key, "--witness", str(archived.witness))
    assert wiped.returncode == 1, wiped.stdout + wiped.stderr
    assert "BROKEN missing" in wiped.stdout and "holds 0 events" in wiped.stdout
    assert checkpoint_file_name(first) in wiped.stdout

    nowhere = verify_cli(url, *key, "--witness", str(tmp_path / "nowhere"))
    assert nowhere.returncode == 2 and "does not exist" in nowhere.stderr, nowhere.stderr
    (tmp_path / "empty").mkdir()
    empty = verify_cli(url, *key, "--witness", str(tmp_path / "empty"))
    assert empty.returncode == 2 and "holds no checkpoint file" in empty.stderr, empty.stderr


async def test_verify_with_the_witness_names_the_file_a_rewritten_history_breaks(
    copy: asyncpg.Connection, archived: Archived
) -> None:
    first = min(r[0] for r in await copy.fetch("SELECT tree_size FROM checkpoints"))
    await remove_signed_history(copy)
    broken = verify_cli(
        await dsn_of(copy, archived),
        "--public-key",
        pinned(archived),
        "--witness",
        str(archived.witness),
    )
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "BROKEN changed" in broken.stdout and "rewritten" in broken.stdout
    assert str(archived.witness / checkpoint_file_name(first)) in broken.stdout


async def test_a_forged_row_after_the_last_checkpoint_is_never_signed(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path, broker: EmbeddedBroker
) -> None:
    """Tamper row: append a correctly hashed and linked row after the last checkpoint. The
    restarted ledger refuses to sign it; verify with the witness names it."""
    witness = copy_witness(archived, tmp_path)
    url = await dsn_of(copy, archived)
    signed = await copy.fetchval("SELECT max(tree_size) FROM checkpoints")
    forged = await append_forged_row(copy)

    refused = f"archive_seq {forged} (and 0 rows after it) was not written by the ledger"
    with pytest.raises(SystemExit, match=re.escape(refused)):
        await run_ledger(ledger_on(archived, url, witness, broker.bootstrap), asyncio.Event())
    assert await copy.fetchval("SELECT max(tree_size) FROM checkpoints") == signed

    key = ("--public-key", pinned(archived))
    alone = verify_cli(url, *key, "--no-derived")
    assert "archive verified" in alone.stdout, alone.stdout  # fresh and linked: looks fine
    unprojected = verify_cli(url, *key)  # but the ledger never projected it
    assert unprojected.returncode == 1, unprojected.stdout + unprojected.stderr
    event = await copy.fetchval("SELECT event_id FROM archive WHERE archive_seq = $1", forged)
    row = f"projected_events ({event}) is missing from the live table"
    assert f"BROKEN (derived) table {row}" in unprojected.stdout
    named = verify_cli(url, *key, "--witness", str(witness))
    assert named.returncode == 1, named.stdout + named.stderr
    assert f"BROKEN inserted: archive_seq {forged}," in named.stdout
    assert "not written by the ledger" in named.stdout

    # the operator's explicit way out: adopt the archive as it stands (here, to show it)
    adopt = adopt_head(url, witness)
    assert adopt.returncode == 0 and f"archive_seq {forged}" in adopt.stdout, adopt.stdout
    assert len(list(witness.glob(f"{HEAD_FILE}.replaced-*"))) == 1  # the old one, kept
    await LedgerHead(witness / HEAD_FILE).resume(copy)


def adopt_head(url: str, witness: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "ledger", "adopt-head", "--database-url", url],
        env={**os.environ, "EXCHANGE_WITNESS_DIR": str(witness)},
        capture_output=True,
        text=True,
    )


def tick(offset: int) -> Record:
    return Record(
        "clock.ticks", 0, offset, b"z", b"{}", (("event_id", str(uuid.uuid4()).encode()),)
    )


async def test_the_head_survives_a_crash_either_side_of_the_commit_and_stops_a_forgery(
    db: asyncpg.Connection, tmp_path: Path
) -> None:
    """The ledger's write path with its head file: an intent before each commit, committed
    after; a crash on either side of the commit is its own; a row forged between two batches
    stops the next batch and never enters the tree it signs."""
    from services.ledger.archive import archive_batch, prepare
    from services.ledger.checkpoints import Checkpointer

    path = tmp_path / HEAD_FILE
    key = Ed25519PrivateKey.generate()
    await prepare(db)
    ours = await Checkpointer.load(db, key, 1000, 60)
    head = LedgerHead(path)
    await head.resume(db)
    await head.settle(db, ours.tree.size, ours.tree.last_seq)  # no file: trusts the empty one
    assert read_record(path) == HeadRecord(Head(0, chain.GENESIS, 0))

    await archive_batch(db, [tick(i) for i in range(5)], ours.tree, head)
    newest = await db.fetchrow("SELECT max(archive_seq) AS seq FROM archive")
    five = Head(newest["seq"], await chain_at(db, newest["seq"]), 5)
    assert read_record(path) == HeadRecord(five)

    # killed after the intent, before the commit: the archive ends at the committed head
    write_record(path, HeadRecord(five, Head(99, hashlib.sha256(b"x").digest(), 9)), durable=True)
    await LedgerHead(path).resume(db)
    assert read_record(path) == HeadRecord(five)
    # killed after the commit, before recording it: the archive ends at the intent
    await archive_batch(db, [tick(i) for i in range(5, 10)], ours.tree, head)
    ten = read_record(path)
    assert ten is not None and ten.committed.tree_size == 10
    write_record(path, HeadRecord(five, ten.committed), durable=True)
    await LedgerHead(path).resume(db)
    assert read_record(path) == ten

    forged = await append_forged_row(db)
    with pytest.raises(ForeignArchive, match=f"archive_seq {forged} "):
        await archive_batch(db, [tick(i) for i in range(10, 15)], ours.tree, head)
    assert await db.fetchval("SELECT count(*) FROM archive") == 11  # the batch wrote nothing
    assert ours.tree.size == 10
    signed = await ours.record(db)
    assert signed is not None and signed.head.tree_size == 10  # its own head, not the forgery
    with pytest.raises(ForeignArchive, match=f"archive_seq {forged} "):
        await LedgerHead(path).resume(db)  # and a restart refuses it

    await db.execute("DELETE FROM archive WHERE archive_seq = $1", forged)  # the operator
    assert await archive_batch(db, [tick(i) for i in range(10, 15)], ours.tree, head) == 5


async def chain_at(conn: asyncpg.Connection, seq: int) -> bytes:
    found: bytes = await conn.fetchval("SELECT chain_hash FROM archive WHERE archive_seq = $1", seq)
    return found


# --- The signing key changes only by a hand-over the old key signs ---------------------------


def exchange(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`exchange ARGS…` in a subprocess, with `env` added to this one's environment."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
    )


async def run_rotated_ledger(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path, bootstrap: str
) -> tuple[Settings, Path, Ed25519PublicKey]:
    """`exchange ledger rotate-key` beside a copy of the key, then the ledger on the copied
    archive (on a fresh broker: its positions start over) until it has signed new events with
    the new key and stopped. Returns its settings, the witness dir and the new public key."""
    from services.ledger.key_rotation import next_key_path

    witness = copy_witness(archived, tmp_path)
    key_file = tmp_path / "keys" / "ledger-ed25519.pem"
    key_file.parent.mkdir()
    shutil.copy(archived.key_file, key_file)
    rotate = exchange("ledger", "rotate-key", env={"EXCHANGE_AUDIT_KEY_PATH": str(key_file)})
    assert rotate.returncode == 0, rotate.stderr
    new = load_key(next_key_path(key_file)).public_key()
    assert f"new public_key  {checkpoint.raw_public_key(new).hex()}" in rotate.stdout
    assert next_key_path(key_file).stat().st_mode & 0o777 == 0o600

    await copy.execute("DELETE FROM consumer_positions")  # a fresh broker: read it from the start
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        DATABASE_URL=await dsn_of(copy, archived),
        var_dir=tmp_path / "var",
        witness_dir=witness,
        audit_key_path=key_file,
    )
    before = await copy.fetchval(EVENTS_ARCHIVED)
    stop = asyncio.Event()
    task = asyncio.create_task(run_ledger(settings, stop))
    set_producer("intake-needs")
    publish(bootstrap, "needs.events", needs(5))
    set_producer(None)
    await wait_until(copy, EVENTS_ARCHIVED, before + 5)
    await wait_until(copy, "SELECT count(*) FROM archive WHERE event_type = 'KeyRotated'", 1)
    stop.set()
    await task  # a clean stop signs what it archived: with the new key
    return settings, witness, new


async def test_a_rotation_hands_over_and_verifies_under_either_pinned_key(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path, broker: EmbeddedBroker
) -> None:
    from services.ledger.key_rotation import next_key_path, retired_key_path

    settings, witness, new = await run_rotated_ledger(copy, archived, tmp_path, broker.bootstrap)
    key_file = settings.audit_key_path
    assert key_file is not None and not next_key_path(key_file).exists()
    assert checkpoint.key_id(load_key(key_file).public_key()) == checkpoint.key_id(new)
    old_id = checkpoint.key_id(archived.key)
    assert load_key(retired_key_path(key_file, old_id)).public_key() == archived.key
    row = await copy.fetchrow("SELECT after, published_at FROM key_rotations")
    assert row["published_at"] is not None
    signers = await copy.fetch("SELECT tree_size, key_id FROM checkpoints ORDER BY tree_size")
    assert {bytes(r["key_id"]) for r in signers if r["tree_size"] <= row["after"]} == {old_id}
    assert {bytes(r["key_id"]) for r in signers if r["tree_size"] > row["after"]} == {
        checkpoint.key_id(new)
    }
    assert len(list(witness.glob("rotation-*.json"))) == 1

    url = await dsn_of(copy, archived)
    for pin in (pinned(archived), checkpoint.raw_public_key(new).hex()):
        for extra in ((), ("--witness", str(witness))):
            ok = verify_cli(url, "--public-key", pin, *extra)
            assert ok.returncode == 0, ok.stdout + ok.stderr
            assert "key hand-over: key id " in ok.stdout and "signed by both keys" in ok.stdout

    # the ledger starts again under the new key (the hand-over is stored), and the key command
    # prints the hand-over for the operator to publish
    stop = asyncio.Event()
    stop.set()
    await run_ledger(settings, stop)
    shown = exchange(
        "audit",
        "key",
        env={"EXCHANGE_AUDIT_KEY_PATH": str(key_file), "EXCHANGE_WITNESS_DIR": str(witness)},
    ).stdout
    assert f"public_key  {checkpoint.raw_public_key(new).hex()}" in shown
    assert "handed over: key id " + old_id.hex()[:16] in shown

    # a proof across the hand-over checks with the old key alone
    first = min(r["tree_size"] for r in signers)
    proof = exchange("audit", "prove", "--database-url", url, "--from-size", str(first)).stdout
    assert '"key_rotations": [' in proof
    (tmp_path / "proof.json").write_text(proof)
    checked = exchange(
        "audit", "verify-proof", str(tmp_path / "proof.json"), "--public-key", pinned(archived)
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_a_key_change_without_the_old_keys_signature_fails(
    copy: asyncpg.Connection, archived: Archived, tmp_path: Path
) -> None:
    """Tamper row: an insider with the database and the key file but not the old key writes
    a hand-over to their own key (signing the old key's part with it too), replaces the key
    file and re-signs. The ledger refuses the key; verify under the pinned key names the
    statement."""
    from services.audit.evidence.keys import KeyRefused, ledger_key, load_or_create_key
    from services.audit.evidence.rotation import rotate
    from services.ledger.key_rotation import handed_over, rotation_event_id

    forged = load_or_create_key(tmp_path / "keys" / "ledger-ed25519.pem")
    statement = rotate(forged, forged, 0)  # cannot sign as the old key: signs as itself
    bogus = type(statement)(
        checkpoint.raw_public_key(archived.key),
        statement.new_public_key,
        await copy.fetchval("SELECT max(tree_size) FROM checkpoints"),
        statement.old_signature,
        statement.new_signature,
    )
    await copy.execute(
        "INSERT INTO key_rotations (old_key_id, old_public_key, new_public_key, after,"
        " old_signature, new_signature, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        bogus.old_key_id,
        bogus.old_public_key,
        bogus.new_public_key,
        bogus.after,
        bogus.old_signature,
        bogus.new_signature,
        rotation_event_id(bogus),
    )
    signed_by = await copy.fetchval("SELECT key_id FROM checkpoints ORDER BY tree_size DESC")
    assert handed_over([bogus]) == {}
    with pytest.raises(KeyRefused, match="key change is refused"):
        ledger_key(tmp_path / "keys" / "ledger-ed25519.pem", signed_by, handed_over([bogus]))

    broken = verify_cli(await dsn_of(copy, archived), "--public-key", pinned(archived))
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "BROKEN checkpoint" in broken.stdout
    assert "not signed by the old key it names" in broken.stdout


# --- Derived tables: the journal and the read models equal a fold of the verified archive -----


def as_written(records: list[Record]) -> list[Record]:
    """Each record with its topic's writer in the `producer` header, as the services stamp
    what they write (so that verify has no foreign producer to report)."""
    return [
        replace(r, headers=(*r.headers, (PRODUCER_HEADER, (writer_of(r.topic) or "").encode())))
        for r in records
    ]


async def archive_signed(db: asyncpg.Connection, records: list[Record]) -> Ed25519PrivateKey:
    """Archive `records` by the ledger's write path, in batches as it reads them, and sign."""
    await prepare(db)
    for i in range(0, len(records), 97):
        await archive_batch(db, records[i : i + 97])
    key = Ed25519PrivateKey.generate()
    assert await (await Checkpointer.load(db, key, 1000, 60)).record(db) is not None
    return key


async def sign_city(db: asyncpg.Connection) -> str:
    """Given a city's week decided by the router and matcher (funds, donations, needs,
    pledges, matches: every derived table has rows), archived and signed; the pinned key."""
    records = as_written(simulate(generate(needs=120, volunteers=60, funds=8, seed=3).events))
    key = await archive_signed(db, records)
    return checkpoint.raw_public_key(key.public_key()).hex()


async def test_verify_finds_the_derived_tables_equal_to_a_fold_unless_told_not_to(
    db: asyncpg.Connection, database_url: str
) -> None:
    key = await sign_city(db)

    done = verify_cli(database_url, "--public-key", key)
    skipped = verify_cli(database_url, "--public-key", key, "--no-derived")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "archive verified" in done.stdout
    assert (
        "derived tables: money journal and 6 read models equal a fold of the archive" in done.stdout
    )
    assert "0 archived during the check" in done.stdout
    assert "not compared (the ledger's clock): rm_needs.updated_at" in done.stdout
    assert skipped.returncode == 0, skipped.stdout + skipped.stderr
    assert "derived tables: not checked (--no-derived)" in skipped.stdout
    assert "equal a fold" not in skipped.stdout
    scratch = "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'audit_replay_%'"
    assert await db.fetchval(scratch) == 0, "nothing is left behind"


async def test_a_changed_journal_line_amount_fails_verify_naming_the_row(
    db: asyncpg.Connection, database_url: str
) -> None:
    """Tamper row: change one money line of the journal. The archive is untouched, so only
    the fold of it contradicts the journal."""
    key = await sign_city(db)
    line = await db.fetchrow(
        "SELECT event_id, line_no, amount_minor FROM journal_lines WHERE currency <> 'MIN'"
        " ORDER BY event_id, line_no LIMIT 1"
    )
    await db.execute(
        "UPDATE journal_lines SET amount_minor = amount_minor + 100"
        " WHERE event_id = $1 AND line_no = $2",
        line["event_id"],
        line["line_no"],
    )

    broken = verify_cli(database_url, "--public-key", key)

    assert broken.returncode == 1, broken.stdout + broken.stderr
    row = f"journal_lines ({line['event_id']}, {line['line_no']})"
    assert f"BROKEN (derived) table {row} differs in amount_minor" in broken.stdout
    was = line["amount_minor"]
    assert f"amount_minor: live {was + 100} / replayed {was}" in broken.stdout
    assert f"written by events {line['event_id']}" in broken.stdout
    assert "1 rows differ from a fold of the verified archive (journal_lines 1)" in broken.stdout
    assert "archive verified" not in broken.stdout


async def test_a_reservation_shrunk_everywhere_at_once_fails_verify_naming_each_column(
    db: asyncpg.Connection, database_url: str
) -> None:
    """Tamper row: the insider shrinks a fund's reservation by 500 fen consistently: the
    proposal's journal lines (the fund's available up, its reserved down; the event still sums
    to zero), the match's amount and the need's fill. Every derived table agrees with every
    other; none agrees with the archive."""
    key = await sign_city(db)
    match = await db.fetchrow(
        "SELECT match_id, need_id, fund_id, proposed_event FROM rm_matches"
        " WHERE supply = 'fund' AND status IN ('proposed', 'accepted') ORDER BY match_id LIMIT 1"
    )
    assert match is not None, "the city's week leaves a fund's money reserved"
    lines = {
        r["account"].rsplit(":", 1)[1]: r["line_no"]
        for r in await db.fetch(
            "SELECT account, line_no FROM journal_lines WHERE event_id = $1",
            match["proposed_event"],
        )
    }
    move = (
        "UPDATE journal_lines SET amount_minor = amount_minor + $3"
        " WHERE event_id = $1 AND line_no = $2"
    )
    await db.execute(move, match["proposed_event"], lines["available"], 500)
    await db.execute(move, match["proposed_event"], lines["reserved"], -500)
    await db.execute(
        "UPDATE rm_matches SET amount_minor = amount_minor - 500 WHERE match_id = $1",
        match["match_id"],
    )
    await db.execute(
        "UPDATE rm_needs SET filled = filled - 500 WHERE need_id = $1", match["need_id"]
    )
    unbalanced = await db.fetchval(
        "SELECT count(*) FROM (SELECT event_id FROM journal_lines GROUP BY event_id, currency"
        " HAVING sum(amount_minor) <> 0) AS e"
    )
    assert unbalanced == 0, "the journal still balances"

    broken = verify_cli(database_url, "--public-key", key)

    assert broken.returncode == 1, broken.stdout + broken.stderr
    out = broken.stdout
    event = match["proposed_event"]
    for line_no in (lines["available"], lines["reserved"]):
        row = f"journal_lines ({event}, {line_no}) differs in amount_minor"
        assert f"BROKEN (derived) table {row}" in out
    assert f"BROKEN (derived) table rm_matches ({match['match_id']}) differs in amount_minor" in out
    assert f"BROKEN (derived) table rm_needs ({match['need_id']}) differs in filled\n" in out
    assert "rm_needs 1, rm_matches 1, journal_lines 2" in out


async def test_rows_archived_during_the_check_are_linked_then_folded(
    db: asyncpg.Connection,
) -> None:
    """A ledger running while verify walks archives more rows: the live tables include them,
    so the fold does too, once they are shown to be linked after the walked archive."""
    records = simulate(generate(needs=40, volunteers=20, funds=4, seed=5).events)
    cut = len(records) * 3 // 4
    key = await archive_signed(db, records[:cut])
    finding, walked = await verify_archive(db, key.public_key())
    assert finding is None
    for i in range(cut, len(records), 50):  # the ledger goes on after the walk
        await archive_batch(db, records[i : i + 50])
    after = await db.fetchval("SELECT count(*) FROM archive") - walked.events

    derived = await verify_derived(db, walked)

    assert derived.equal and derived.after_walk == after > 0
    assert derived.report is not None and derived.report.events == walked.events + after

    tail = await db.fetchval("SELECT max(archive_seq) FROM archive")
    await db.execute(
        "UPDATE archive SET kafka_offset = kafka_offset + 1 WHERE archive_seq = $1", tail
    )
    changed = await verify_derived(db, walked)
    assert changed.finding is not None and not changed.equal
    assert (changed.finding.kind, changed.finding.archive_seq) == ("changed", tail)
    assert "archived during the check" in changed.finding.detail

    await db.execute(
        "DELETE FROM archive WHERE archive_seq = (SELECT min(archive_seq) FROM archive)"
    )
    shifted = await verify_derived(db, walked)
    assert shifted.finding is not None and "changed while verify ran" in shifted.finding.detail
