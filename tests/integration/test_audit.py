"""Tamper evidence on a real archive: events go through the real ledger (real broker, real
PostgreSQL); then rows are changed, deleted, inserted and swapped in the database, and
`exchange audit verify` names the first broken event each time, and passes when untouched."""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit import chain, checkpoint
from services.audit.evidence import compare_with_topics, prove, verify_archive
from services.audit.keys import load_key
from services.audit.proofs import proof_document, proof_problem
from services.embedded.broker import EmbeddedBroker
from services.embedded.postgres import EmbeddedPostgres
from services.ledger.archive import ROW_COLUMNS, row_of
from services.ledger.service import run_ledger
from services.platform.db import connect, migrate
from services.platform.kafka import ensure_topics, set_producer
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
            name, postgres.admin_url, broker.bootstrap, load_key(key_file).public_key(), key_file
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
    finding, summary = await verify_archive(db, Ed25519PrivateKey.generate().public_key())
    assert finding is None and summary.events == 8

    # a row without hashes after that is no legacy row: it stays unhashed, and is reported
    await db.execute("UPDATE archive SET content_hash = NULL WHERE archive_seq = 7")
    assert await hash_legacy_rows(db) == 0
    finding, _ = await verify_archive(db, Ed25519PrivateKey.generate().public_key())
    assert finding is not None and (finding.kind, finding.archive_seq) == ("inserted", 7)


def test_the_signing_key_is_created_once_readable_only_by_its_owner(tmp_path: Path) -> None:
    from services.audit.keys import load_or_create_key

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
    from services.audit.merkle import leaf_hash, root
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
    from services.audit.merkle import leaf_hash, root
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
