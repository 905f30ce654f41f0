"""Writes one batch of records into PostgreSQL in one transaction: archive, projections, positions.

The positions live in the same transaction as the rows, so a crash at any instant adds nothing
twice and skips nothing; `event_id` is unique in the archive, so a redelivered or duplicated
message (a replay, a restored topic) changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Sequence

import asyncpg

from schemas.codec import DecodeError, decode
from schemas.envelope import Envelope, derive_id
from schemas.messages import COMMANDS, Message, MessageDeadLettered
from services.audit.evidence.archive_row import ROW_COLUMNS, archive_id, row_of
from services.audit.evidence.chain import GENESIS, ArchivedRow, chain, content_hash
from services.audit.evidence.ledger_head import Head
from services.audit.evidence.merkle import Frontier, leaf_hash
from services.ledger import provenance
from services.ledger.batch_projection import project_batch
from services.ledger.head import ForeignArchive, LedgerHead
from services.ledger.sequences import Seen, is_sequenced, record_sequences
from services.ledger.set_aside import record_set_aside
from services.platform.kafka import Record

CONSUMER = "ledger"

TEMP_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS archive_in (
    ord integer, event_id uuid, topic text, kafka_partition integer, kafka_offset bigint,
    kafka_key bytea, value bytea, headers text, event_type text, stream_id text,
    stream_seq bigint, recorded_at timestamptz, content_hash bytea
) ON COMMIT DELETE ROWS
"""

ARCHIVE_LOCK = 0x41524348  # advisory lock id ("ARCH"): one writer extends the hash chain at a time


class ArchiveTree(Frontier):
    """The ledger's Merkle tree of the archive, with the archive_seq of its last leaf.

    A checkpoint says which rows it covers by `last_seq`, and that must be what the tree holds,
    not the archive's newest row: another writer may have archived rows this tree has not taken
    in (the running ledger refuses those: services/ledger/head.py)."""

    def __init__(self) -> None:
        super().__init__()
        self.last_seq = 0


def _decoded(record: Record) -> Envelope[Message] | None:
    try:
        return decode(record.value, record.event_type)
    except DecodeError:
        return None  # the owning processor parks it on the dead-letter topic


async def prepare(conn: asyncpg.Connection) -> None:
    """Create this connection's staging table (COPY target) once."""
    await conn.execute(TEMP_TABLE)


async def archive_batch(
    conn: asyncpg.Connection,
    records: Sequence[Record],
    tree: ArchiveTree | None = None,
    head: LedgerHead | None = None,
) -> int:
    """Archive `records` (in consumption order); return how many were new.

    New rows get their content and chain hashes (services/audit/evidence/chain.py) in the same
    transaction as the rows and positions, so the chain never has a gap or a fork; `tree`, the
    ledger's running Merkle tree, gains their leaves once the transaction has committed.

    With `head` (the ledger's record of its own head, services/ledger/head.py; needs `tree`),
    the archive must still end at that head, and no row may appear between it and the new
    rows: ForeignArchive otherwise, and nothing is written. The new head is recorded as an
    intent before the commit and as committed after it."""
    if head is not None and tree is None:
        raise ValueError("a ledger head needs the tree it describes")
    envelopes: dict[uuid.UUID, Envelope[Message]] = {}
    rows = []
    for ord_, rec in enumerate(records):
        env = _decoded(rec)
        eid = env.event_id if env is not None else archive_id(rec)
        if env is not None:
            envelopes[eid] = env
        headers = [[k, v.decode("utf-8", "replace")] for k, v in rec.headers]
        row = ArchivedRow(
            eid,
            rec.topic,
            rec.partition,
            rec.offset,
            rec.key,
            rec.value,
            headers,
            env.event_type if env else (rec.event_type or "Undecodable"),
            env.stream_id if env else None,
            env.stream_seq if env else None,
            env.recorded_at if env else None,
        )
        rows.append(
            (
                ord_,
                eid,
                row.topic,
                row.partition,
                row.offset,
                row.key,
                row.value,
                json.dumps(headers, ensure_ascii=False),
                row.event_type,
                row.stream_id,
                row.stream_seq,
                row.recorded_at,
                content_hash(row),
            )
        )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ARCHIVE_LOCK)
        if head is not None:
            await head.check(conn)
        await conn.copy_records_to_table("archive_in", records=rows)
        known = {  # (an index lookup: a join here turns into a scan of the whole archive)
            (r["topic"], r["event_id"])
            for r in await conn.fetch(
                "SELECT topic, event_id FROM archive WHERE event_id = ANY($1::uuid[])",
                list({r[1] for r in rows}),
            )
        }
        fresh = []  # the first sighting of each (topic, event id) not archived before, in order
        for r in rows:
            if (r[2], r[1]) not in known:
                known.add((r[2], r[1]))
                fresh.append(r[0])
        contents = [rows[o][12] for o in fresh]
        links = chain(await chain_head(conn), contents)
        inserted = await conn.fetch(
            "INSERT INTO archive (event_id, topic, kafka_partition, kafka_offset, kafka_key,"
            " value, headers, event_type, stream_id, stream_seq, recorded_at, content_hash,"
            " chain_hash)"
            " SELECT i.event_id, i.topic, i.kafka_partition, i.kafka_offset, i.kafka_key,"
            " i.value, i.headers::jsonb, i.event_type, i.stream_id, i.stream_seq, i.recorded_at,"
            " i.content_hash, c.chain_hash"
            " FROM archive_in i JOIN unnest($1::integer[], $2::bytea[]) AS c(ord, chain_hash)"
            " ON c.ord = i.ord ORDER BY i.ord"
            " RETURNING event_id, topic, archive_seq",
            fresh,
            links,
        )
        new = sorted(inserted, key=lambda r: r["archive_seq"])
        if [(r["topic"], r["event_id"]) for r in new] != [(rows[o][2], rows[o][1]) for o in fresh]:
            raise RuntimeError("archive_seq order differs from the hash chain's order")
        flagged = [  # producer header not the topic's writer (services/ledger/provenance.py)
            (r["archive_seq"], r["event_id"], rows[o][8], f)
            for o, r in zip(fresh, new, strict=True)
            if (f := provenance.check(records[o])) is not None
        ]
        await provenance.record_flags(conn, flagged)
        if tree is not None and new and new[0]["archive_seq"] != tree.last_seq + 1:
            # a gap: rows another writer archived since (or a sequence gap): leaves before ours
            between = await _rows_between(conn, tree.last_seq, new[0]["archive_seq"])
            if between and head is not None:  # written beside the lock: not the ledger's
                raise ForeignArchive(
                    f"{len(between)} rows appeared between archive_seq {tree.last_seq} (the "
                    f"ledger's head) and {new[0]['archive_seq']} while it archived a batch: "
                    "the ledger did not write them"
                )
            contents = [*between, *contents]
        first = await conn.fetch(  # an event seen before on another topic is projected once
            "INSERT INTO projected_events (event_id, archive_seq)"
            " SELECT * FROM unnest($1::uuid[], $2::bigint[])"
            " ON CONFLICT DO NOTHING RETURNING event_id, archive_seq",
            [r["event_id"] for r in new],
            [r["archive_seq"] for r in new],
        )
        order = sorted(first, key=lambda r: r["archive_seq"])
        firsts = (envelopes.get(r["event_id"]) for r in order)
        set_aside = await project_batch(conn, [env for env in firsts if env is not None])
        if set_aside:  # archived, not projected: recorded, and reported on a dead-letter topic
            where = {r["event_id"]: (r["archive_seq"], r["topic"]) for r in new}
            ords = {(rows[o][2], rows[o][1]): o for o in fresh}
            await record_set_aside(
                conn,
                [
                    (records[ords[(where[eid][1], eid)]], envelopes[eid], where[eid][0], why)
                    for eid, why in set_aside.items()
                ],
            )
        sequenced: list[Seen] = []
        for r in new:  # each stream on its home topic, in archive order
            env = envelopes.get(r["event_id"])
            if env is not None and is_sequenced(
                env.stream_id, env.stream_seq, env.event_type, r["topic"]
            ):
                assert env.stream_id is not None
                sequenced.append(
                    Seen(
                        env.event_id,
                        env.event_type,
                        env.stream_id,
                        env.stream_seq,
                        r["archive_seq"],
                        r["topic"],
                    )
                )
        await record_sequences(conn, sequenced)  # gaps and reorderings, never hidden
        # the outbox rows these events came from (postings, registered organisations)
        await conn.execute(
            "UPDATE postings SET archived_at = now()"
            " WHERE posting_id = ANY($1::uuid[]) AND archived_at IS NULL",
            [r[1] for r in rows],
        )
        await mark_decided(
            conn, [r[1] for r in rows], [envelopes.get(r["event_id"]) for r in order]
        )
        await save_positions(conn, records)
        if head is not None and tree is not None and new:
            await head.intend(Head(new[-1]["archive_seq"], links[-1], tree.size + len(contents)))
    if head is not None:
        await head.commit()
    if tree is not None:
        tree.extend(leaf_hash(c) for c in contents)
        if new:
            tree.last_seq = new[-1]["archive_seq"]
    return len(new)


COMMAND_TYPES = [c.TYPE for c in COMMANDS]


async def mark_decided(
    conn: asyncpg.Connection,
    archived: Sequence[uuid.UUID],
    first_seen: Sequence[Envelope[Message] | None],
) -> None:
    """Record, on the outbox rows, that their postings are decided: a command when the event
    that decides it (id `derive_id(posting, "decided")`, accepted or refused) is archived; a
    posting that is itself a fact (an organisation registered) when it is archived."""
    decided = [
        env.causation_id
        for env in first_seen
        if env is not None
        and env.causation_id is not None
        and env.event_id == derive_id(env.causation_id, "decided")
    ]
    decided += [  # a posting its intake set aside is decided too: nothing more will come
        posting
        for env in first_seen
        if env is not None and isinstance(env.payload, MessageDeadLettered)
        if (posting := _posting_of(env.payload)) is not None
    ]
    if decided:
        await conn.execute(
            "UPDATE postings SET decided_at = now()"
            " WHERE posting_id = ANY($1::uuid[]) AND decided_at IS NULL",
            decided,
        )
    await conn.execute(
        "UPDATE postings SET decided_at = now() WHERE posting_id = ANY($1::uuid[])"
        " AND decided_at IS NULL AND NOT (event_type = ANY($2::text[]))",
        list(archived),
        COMMAND_TYPES,
    )


def _posting_of(letter: MessageDeadLettered) -> uuid.UUID | None:
    """The id of the posting a dead letter parked, if it parked one off a postings topic."""
    if not letter.topic.endswith(".postings"):
        return None
    try:
        return uuid.UUID(json.loads(bytes.fromhex(letter.original_value_hex))["event_id"])
    except (ValueError, KeyError, TypeError):
        return None  # undecodable bytes: no posting id to mark


async def _rows_between(conn: asyncpg.Connection, after: int, before: int) -> list[bytes]:
    """Content hashes of the rows strictly between two archive_seqs (normally none: only when
    another ledger archived in between, under the same lock)."""
    found = await conn.fetch(
        f"SELECT {ROW_COLUMNS} FROM archive WHERE archive_seq > $1 AND archive_seq < $2"
        " ORDER BY archive_seq",
        after,
        before,
    )
    return [r["content_hash"] or content_hash(row_of(r)) for r in found]


async def chain_head(conn: asyncpg.Connection) -> bytes:
    """The chain hash of the last hashed row (GENESIS when there is none).

    Every row the ledger writes is hashed; a row without hashes after them was not written by
    the ledger, and stays outside the chain for `exchange audit verify` to report."""
    head: bytes | None = await conn.fetchval(
        "SELECT chain_hash FROM archive WHERE chain_hash IS NOT NULL"
        " ORDER BY archive_seq DESC LIMIT 1"
    )
    return GENESIS if head is None else head


async def hash_legacy_rows(conn: asyncpg.Connection, batch: int = 5000) -> int:
    """Give the rows archived before migration 0004 their hashes, in archive_seq order.

    Runs at the ledger's start, before it archives anything, so the chain starts at the first
    row ever archived. Only rows up to the archive's end at migration time are hashed here: a
    row without hashes after that was not written by the ledger. These hashes attest to the
    rows as they were when first hashed, not as they were first archived."""
    done = 0
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", ARCHIVE_LOCK)
            rows = await conn.fetch(
                f"SELECT {ROW_COLUMNS} FROM archive WHERE chain_hash IS NULL"
                " AND archive_seq <= (SELECT until_seq FROM archive_legacy)"
                " ORDER BY archive_seq LIMIT $1",
                batch,
            )
            if not rows:
                return done
            before = await conn.fetchval(
                "SELECT chain_hash FROM archive WHERE archive_seq < $1"
                " ORDER BY archive_seq DESC LIMIT 1",
                rows[0]["archive_seq"],
            )
            contents = [content_hash(row_of(r)) for r in rows]
            links = chain(before or GENESIS, contents)
            await conn.execute(
                "UPDATE archive a SET content_hash = h.content_hash, chain_hash = h.chain_hash"
                " FROM unnest($1::bigint[], $2::bytea[], $3::bytea[])"
                " AS h(archive_seq, content_hash, chain_hash)"
                " WHERE a.archive_seq = h.archive_seq",
                [r["archive_seq"] for r in rows],
                contents,
                links,
            )
            done += len(rows)


DECISIONS_TOPIC = "matches.events"
INPUTS_TOPIC = "matcher.inputs"


async def hold_back_decisions(
    conn: asyncpg.Connection, records: Sequence[Record]
) -> tuple[list[Record], dict[tuple[str, int], int]]:
    """Keep back each matcher decision whose input is not archived on matcher.inputs yet.

    After the broker forgets, matcher.inputs is rebuilt from the archive and the matcher
    replays it; a decision archived ahead of its input could then disagree with the replay.
    Returns the records to archive now and, per held partition, the offset to read again."""
    causes: dict[int, uuid.UUID] = {}
    for i, rec in enumerate(records):
        if rec.topic == DECISIONS_TOPIC:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                causes[i] = uuid.UUID(json.loads(rec.value)["causation_id"])
    if not causes:
        return list(records), {}
    known = {r.event_id for r in records if r.topic == INPUTS_TOPIC}
    known |= {
        r["event_id"]
        for r in await conn.fetch(
            "SELECT event_id FROM archive WHERE topic = $1 AND event_id = ANY($2::uuid[])",
            INPUTS_TOPIC,
            list(set(causes.values()) - known),
        )
    }
    keep: list[Record] = []
    held: dict[tuple[str, int], int] = {}
    for i, rec in enumerate(records):
        tp = (rec.topic, rec.partition)
        if tp in held:
            continue
        if i in causes and causes[i] not in known:
            held[tp] = rec.offset
            continue
        keep.append(rec)
    return keep, held


async def save_positions(conn: asyncpg.Connection, records: Sequence[Record]) -> None:
    """Record the next offset to read for every partition this batch touched."""
    nxt: dict[tuple[str, int], int] = {}
    for rec in records:
        key = (rec.topic, rec.partition)
        nxt[key] = max(nxt.get(key, 0), rec.offset + 1)
    await conn.executemany(
        "INSERT INTO consumer_positions (consumer, topic, kafka_partition, next_offset)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (consumer, topic, kafka_partition)"
        " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        [(CONSUMER, t, p, o) for (t, p), o in nxt.items()],
    )


async def load_positions(conn: asyncpg.Connection) -> dict[tuple[str, int], int]:
    """Where the ledger resumes: next offset per (topic, partition)."""
    rows = await conn.fetch(
        "SELECT topic, kafka_partition, next_offset FROM consumer_positions WHERE consumer = $1",
        CONSUMER,
    )
    return {(r["topic"], r["kafka_partition"]): r["next_offset"] for r in rows}
