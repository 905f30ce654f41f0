"""Reading the evidence: archive rows, checkpoints and topics, for the checks in verify.py,
topics_compare.py and proofs.py. Pages through the archive so memory stays flat."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from schemas.topics import LEDGER_CHECKPOINTS, all_topic_names
from services.audit.evidence.archive_row import ROW_COLUMNS, archive_id, row_of
from services.audit.evidence.chain import GENESIS, content_hash
from services.audit.evidence.checkpoint import Checkpoint, TreeHead
from services.audit.evidence.ledger_head import Head, read_record
from services.audit.evidence.merkle import consistency_proof, leaf_hash
from services.audit.evidence.proofs import checkpoint_from_json
from services.audit.evidence.rotation import KeyRing, Rotation, rotation_from_json
from services.audit.evidence.topics_compare import Copy, compare_partition
from services.audit.evidence.verify import (
    LOOKBEHIND,
    ArchiveChecker,
    Finding,
    StoredRow,
    Summary,
    merge_checkpoints,
)
from services.audit.evidence.witness import beyond_head, candidates, ledger_extent
from services.platform.kafka import read_all

PAGE = 5000
Progress = Callable[[int, int], None]


def stored_row(r: asyncpg.Record) -> StoredRow:
    """An archive row read with ROW_COLUMNS, as the checks in verify.py take it."""
    return StoredRow(r["archive_seq"], row_of(r), r["content_hash"], r["chain_hash"])


async def stored_checkpoints(conn: asyncpg.Connection) -> list[Checkpoint]:
    """Every checkpoint in the checkpoints table, in tree-size order."""
    return [
        Checkpoint(
            TreeHead(r["tree_size"], r["root_hash"], r["chain_hash"]), r["key_id"], r["signature"]
        )
        for r in await conn.fetch(
            "SELECT tree_size, root_hash, chain_hash, signature, key_id FROM checkpoints"
            " ORDER BY tree_size"
        )
    ]


async def published_checkpoints(conn: asyncpg.Connection) -> list[Checkpoint]:
    """The checkpoints archived as CheckpointRecorded events: a copy the checkpoints table cannot
    take back. A row whose content no longer matches its hash is left to the chain check."""
    found = []
    for r in await conn.fetch(
        f"SELECT {ROW_COLUMNS} FROM archive WHERE topic = $1 ORDER BY archive_seq",
        LEDGER_CHECKPOINTS.name,
    ):
        if r["content_hash"] != content_hash(row_of(r)):
            continue
        try:
            found.append(checkpoint_from_json(json.loads(r["value"])["payload"]))
        except (KeyError, TypeError, ValueError):
            continue
    return found


ROTATION_COLUMNS = "old_public_key, new_public_key, after, old_signature, new_signature"


async def stored_rotations(conn: asyncpg.Connection) -> list[Rotation]:
    """Every key hand-over in the `key_rotations` table, oldest first (not checked here)."""
    return [
        Rotation(
            r["old_public_key"],
            r["new_public_key"],
            r["after"],
            r["old_signature"],
            r["new_signature"],
        )
        for r in await conn.fetch(
            f"SELECT {ROTATION_COLUMNS} FROM key_rotations ORDER BY after, created_at"
        )
    ]


async def archived_rotations(conn: asyncpg.Connection) -> list[Rotation]:
    """The hand-overs archived as KeyRotated events (a copy the table cannot take back)."""
    found = []
    for r in await conn.fetch(
        f"SELECT {ROW_COLUMNS} FROM archive WHERE topic = $1 AND event_type = 'KeyRotated'"
        " ORDER BY archive_seq",
        LEDGER_CHECKPOINTS.name,
    ):
        if r["content_hash"] != content_hash(row_of(r)):
            continue
        try:
            found.append(rotation_from_json(json.loads(r["value"])["payload"]))
        except (KeyError, TypeError, ValueError):
            continue
    return found


async def trusted_keys(
    conn: asyncpg.Connection, pinned: Ed25519PublicKey, held: Sequence[Rotation] = ()
) -> KeyRing:
    """The pinned key and the keys its hand-overs reach, from the table, the archive and what
    the verifier holds (witness files). Problems (a statement that does not verify, a fork)
    are in the ring's `problems`."""
    return KeyRing(pinned, [*await stored_rotations(conn), *await archived_rotations(conn), *held])


async def verify_archive(
    conn: asyncpg.Connection,
    trusted: Ed25519PublicKey,
    progress: Progress | None = None,
    *,
    held: Sequence[Checkpoint] = (),
    held_from: Mapping[Checkpoint, str] | None = None,
    ledger_heads: Sequence[Path] = (),
    expect_at_least: int = 0,
    unsigned_limit: float | None = None,
    rotations: Sequence[Rotation] = (),
) -> tuple[Finding | None, Summary]:
    """Recompute every content hash, chain hash and checkpoint; the first finding, or None.

    Fails closed: events with no signed checkpoint are a finding. `held` are checkpoints the
    verifier holds from outside the database (checked like the archive's own: a held one
    larger than the archive, or not matching it, is a finding); `held_from` names the file
    each came from. `ledger_heads`: head files the ledger wrote outside the database
    (services/ledger/head.py), read once the archive has been walked: rows beyond the ledger's
    head, or its rows gone or rewritten, are a finding. `expect_at_least`: fewer events
    is a finding. `unsigned_limit` (seconds): an event other than a checkpoint event archived
    longer ago than that and not covered by a signed checkpoint is a finding (stale).
    `rotations`: key hand-overs held outside the database; with the stored and archived ones
    they extend trust from `trusted` to its successors (and predecessors), each for its span;
    one that does not verify is a finding (nobody who held the old key made it)."""
    checkpoints = merge_checkpoints(
        await stored_checkpoints(conn), await published_checkpoints(conn), held
    )
    ring = await trusted_keys(conn, trusted, rotations)
    checker = ArchiveChecker(checkpoints, ring, held_from)
    checker.summary.handovers = list(ring.handovers)
    if ring.problems:
        return Finding("checkpoint", None, None, None, ring.problems[0]), checker.summary
    total = await conn.fetchval("SELECT count(*) FROM archive")
    last, done = -(2**63), 0  # archive_seq can be made zero or negative by hand
    while True:
        rows = [
            stored_row(r)
            for r in await conn.fetch(
                f"SELECT {ROW_COLUMNS} FROM archive WHERE archive_seq > $1"
                " ORDER BY archive_seq LIMIT $2",
                last,
                PAGE + LOOKBEHIND,  # the extra rows only help tell a reordering from a deletion
            )
        ]
        if not rows:
            break
        upto = min(PAGE, len(rows))
        finding = checker.check(rows, upto)
        if finding is not None:
            return finding, checker.summary
        last = rows[upto - 1].archive_seq
        done += upto
        if progress:
            progress(done, total)
    finding = checker.finish()
    summary = checker.summary
    for path in ledger_heads:
        finding = finding or await _against_head(conn, summary, path)
    if finding is None and summary.events < expect_at_least:
        finding = Finding(
            "missing",
            None,
            None,
            None,
            f"the archive holds {summary.events} events, fewer than the {expect_at_least} "
            "expected: events were deleted",
        )
    if finding is None and unsigned_limit is not None:
        finding = await _stale(conn, summary, unsigned_limit)
    return finding, summary


async def _against_head(conn: asyncpg.Connection, summary: Summary, path: Path) -> Finding | None:
    """The archive against the ledger's own head file (services/audit/evidence/witness.py,
    `beyond_head`); records in `summary.ledger_head` how far the ledger wrote."""
    try:
        record = await asyncio.to_thread(read_record, path)
    except (OSError, ValueError) as exc:
        return Finding("witness", None, None, None, f"cannot read {path}: {exc}")
    if record is None:
        return Finding("witness", None, None, None, f"{path} is gone")
    holds = {h: await _row_is(conn, h) for h in candidates(record)}
    rows_now = int(await conn.fetchval("SELECT count(*) FROM archive"))
    signed = summary.last_signed.head.tree_size if summary.last_signed else 0
    found = beyond_head(record, holds, summary.events, rows_now, str(path), signed)
    if found is None:
        ours = ledger_extent(record, holds)
        assert ours is not None  # no finding: a head holds
        summary.ledger_heads.append(ours)
        return None
    r = await row_at(conn, found.position)
    if r is None:
        return Finding(found.kind, None, None, None, found.detail)
    return Finding(found.kind, r["archive_seq"], r["event_id"], r["topic"], found.detail)


async def row_at(conn: asyncpg.Connection, position: int) -> asyncpg.Record | None:
    """The row number `position` (1-based) in archive order; None for 0 or beyond the end."""
    if position < 1:
        return None
    return await conn.fetchrow(
        "SELECT archive_seq, event_id, topic, chain_hash FROM archive ORDER BY archive_seq"
        " OFFSET $1 LIMIT 1",
        position - 1,
    )


async def _row_is(conn: asyncpg.Connection, head: Head) -> bool:
    """Whether row number `head.tree_size` has the head's archive_seq and chain hash."""
    if head.tree_size == 0:
        return head.chain_hash == GENESIS
    r = await row_at(conn, head.tree_size)
    return r is not None and (r["archive_seq"], r["chain_hash"]) == (
        head.archive_seq,
        head.chain_hash,
    )


async def _stale(conn: asyncpg.Connection, summary: Summary, limit: float) -> Finding | None:
    """The first event after the last signed checkpoint (checkpoint events aside: they alone
    never make a checkpoint due) when it was archived more than `limit` seconds ago, by the
    database's clock (`archived_at`)."""
    signed = summary.last_signed.head.tree_size if summary.last_signed else 0
    r = await conn.fetchrow(
        "SELECT archive_seq, event_id, topic, extract(epoch FROM now() - archived_at) AS age"
        " FROM (SELECT archive_seq, event_id, topic, archived_at FROM archive"
        "       ORDER BY archive_seq OFFSET $1) AS unsigned"
        " WHERE topic <> $2 ORDER BY archive_seq LIMIT 1",
        signed,
        LEDGER_CHECKPOINTS.name,
    )
    if r is None or float(r["age"]) <= limit:
        return None
    return Finding(
        "stale",
        r["archive_seq"],
        r["event_id"],
        r["topic"],
        f"archived {float(r['age']):.0f} s ago and still not covered by a signed checkpoint "
        f"(the latest covers {signed} events; more than {limit:.0f} s unsigned is more than "
        "the ledger's cadence allows): checkpoints were removed, or the ledger is not signing",
    )


async def compare_with_topics(
    conn: asyncpg.Connection, bootstrap: str
) -> tuple[Finding | None, int]:
    """Each topic partition against the archive's rows from it: the first finding (lowest
    archive_seq) and how many records on the topics are not archived yet."""
    logged: dict[tuple[str, int], list[Copy]] = defaultdict(list)

    def read() -> None:
        for rec in read_all(bootstrap, all_topic_names()):
            copy = Copy(archive_id(rec), rec.key, rec.value, rec.offset)
            logged[(rec.topic, rec.partition)].append(copy)

    await asyncio.to_thread(read)
    places = {
        (r["topic"], r["kafka_partition"])
        for r in await conn.fetch("SELECT DISTINCT topic, kafka_partition FROM archive")
    } | set(logged)
    findings: list[Finding] = []
    unarchived = 0
    for topic, partition in sorted(places):
        archived = [
            Copy(r["event_id"], r["kafka_key"], r["value"], r["archive_seq"])
            for r in await conn.fetch(
                "SELECT archive_seq, event_id, kafka_key, value FROM archive"
                " WHERE topic = $1 AND kafka_partition = $2 ORDER BY archive_seq",
                topic,
                partition,
            )
        ]
        report = compare_partition(topic, partition, archived, logged.get((topic, partition), []))
        unarchived += report.unarchived
        if report.finding is not None:
            findings.append(report.finding)
    first = min(findings, key=lambda f: f.archive_seq or 0, default=None)
    return first, unarchived


async def prove(
    conn: asyncpg.Connection, old_size: int, new_size: int | None
) -> tuple[Checkpoint, Checkpoint, list[bytes]]:
    """The two stored checkpoints and the consistency proof between them (from stored hashes:
    run `verify` to trust those)."""
    by_size = {cp.head.tree_size: cp for cp in await stored_checkpoints(conn)}
    if not by_size:
        raise LookupError("no checkpoint has been recorded yet")
    target = max(by_size) if new_size is None else new_size
    for size in (old_size, target):
        if size not in by_size:
            raise LookupError(f"no checkpoint at tree size {size}; there are: {sorted(by_size)}")
    if old_size > target:
        raise LookupError(f"tree size {old_size} is not older than {target}")
    hashes = [
        r["content_hash"]
        for r in await conn.fetch(
            "SELECT content_hash FROM archive ORDER BY archive_seq LIMIT $1", target
        )
    ]
    leaves = [leaf_hash(h or b"") for h in hashes]
    proof = consistency_proof(leaves, old_size) if old_size else []
    return by_size[old_size], by_size[target], proof
