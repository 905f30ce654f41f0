"""`exchange audit replay`: rebuild the read models from the log and re-run the matcher.

Everything runs in one REPEATABLE READ transaction that is rolled back at the end: the archive
and the live read models are read as of one instant (the ledger writes both in one transaction,
so they agree at every instant), the scratch schema is created, filled and compared inside that
transaction, and the rollback drops it. Nothing live is ever written.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import secrets
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import asyncpg

from schemas.codec import DecodeError, decode
from schemas.envelope import Envelope
from schemas.messages import Message
from schemas.topics import MATCHER_INPUTS, MATCHES_EVENTS, partitions_of
from services.audit.reports.invariants import InvariantChecker
from services.domain.projection_fold import (
    PROJECTED_TYPES,
    TABLE_KEYS,
    WALL_CLOCK_COLUMNS,
    ProjectionFold,
    projected,
)
from services.domain.projections import Change
from services.ledger.set_aside import refused_by_postgres
from services.matcher.processor import PartitionMatcher
from services.platform.db import init_connection
from services.platform.gc_pause import paused_gc
from services.platform.kafka import Record
from services.platform.processor import process

BATCH = 20_000
SHOWN = 20
"""Differing rows reported per table (all are counted)."""


class Progress:
    """A progress bar with events per second on stderr, redrawn at most five times a second
    (nothing when stderr is not a terminal: logs stay clean)."""

    def __init__(self, label: str, total: int | None = None, out: Any = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.out = out or sys.stderr
        self.started = self.drawn = time.monotonic()
        self.live = bool(getattr(self.out, "isatty", lambda: False)())

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.live and now - self.drawn >= 0.2:
            self.drawn = now
            self._draw(now)

    def rate(self) -> float:
        """Events per second since the start."""
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-9)
        bar = ""
        if self.total:
            filled = min(30, 30 * self.done // self.total)
            bar = f"[{'#' * filled}{'.' * (30 - filled)}] {self.done}/{self.total} "
        else:
            bar = f"{self.done} "
        self.out.write(f"\r{self.label}: {bar}{rate:,.0f} events/s")
        self.out.flush()

    def close(self) -> None:
        if self.live:
            self._draw(time.monotonic())
            self.out.write("\n")


# ---- projections ----


@dataclass(frozen=True)
class RowDifference:
    """One row that is missing, extra or different in the live read model."""

    table: str
    key: tuple[Any, ...]
    kind: str  # "missing" (replay has it, live not), "extra" (live only), "different"
    columns: tuple[str, ...]
    live: dict[str, Any] | None
    replayed: dict[str, Any] | None
    events: tuple[uuid.UUID, ...]

    def __str__(self) -> str:
        key = ", ".join(str(k) for k in self.key)
        what = {
            "missing": "is missing from the live table",
            "extra": "is in the live table but no event in the log produces it",
            "different": f"differs in {', '.join(self.columns)}",
        }[self.kind]
        text = f"{self.table} ({key}) {what}"
        if self.kind == "different" and self.live and self.replayed:
            text += "".join(
                f"\n    {c}: live {self.live.get(c)!r} / replayed {self.replayed.get(c)!r}"
                for c in self.columns
            )
        if self.events:
            text += "\n    written by events " + ", ".join(str(e) for e in self.events)
        return text


@dataclass
class ProjectionReport:
    """What the projection replay found."""

    events: int = 0
    projected: int = 0
    set_aside: int = 0
    """Events archived but not projected, as the ledger sets them aside (same rules)."""
    seconds: float = 0.0
    differences: dict[str, int] = field(default_factory=dict)
    shown: list[RowDifference] = field(default_factory=list)
    ignored: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def equal(self) -> bool:
        return not any(self.differences.values())


def _headers(raw: Any) -> tuple[tuple[str, bytes], ...]:
    return tuple((str(k), str(v).encode()) for k, v in (raw or ()))


async def fold_archive(
    conn: asyncpg.Connection,
    progress: Progress | None = None,
    batch: int = BATCH,
    jobs: int = 1,
    watch: frozenset[tuple[str, tuple[Any, ...]]] | None = None,
    skip: frozenset[uuid.UUID] = frozenset(),
) -> ProjectionFold:
    """Fold every archived event once, in the order of its first appearance (archive_seq),
    into the read models. Only event types that change a read model are decoded.

    An event is set aside as the ledger sets it aside: by the same pure rules (`projected`,
    `ProjectionFold.try_apply`), and, for the refusals only PostgreSQL made, as the ledger
    recorded them (`skip`).

    With `jobs` > 1, decoding and `project` (pure, and most of the cost) run in that many
    worker processes, one page ahead of the fold, while the next page is fetched; the changes
    are still applied here, one event after another in archive order. `watch`: whose writers
    to note (`ProjectionFold.watch`)."""
    fold = ProjectionFold(watch=watch)
    seen: set[uuid.UUID] = set()
    pool = ProcessPoolExecutor(jobs) if jobs > 1 else None
    loop = asyncio.get_running_loop()
    projected = sorted(PROJECTED_TYPES)
    try:
        with paused_gc():
            last = 0
            ahead: asyncio.Future[list[list[Projected]]] | None = None
            while True:
                # the bytes of an event no read model depends on are not even fetched
                rows = await conn.fetch(
                    "SELECT archive_seq, event_id, event_type,"
                    " CASE WHEN event_type = ANY($3::text[]) THEN value END"
                    " FROM archive WHERE archive_seq > $1 ORDER BY archive_seq LIMIT $2",
                    last,
                    batch,
                    projected,
                )
                page: list[tuple[bytes, str]] = []
                for seq, event_id, event_type, value in rows:
                    if event_id in seen:
                        continue  # another topic's copy: projected once, at its first appearance
                    seen.add(event_id)
                    fold.first_seen(event_id, seq)
                    if value is not None:
                        page.append((value, event_type))
                if pool is None:
                    _apply_all(fold, [project_values(page)], skip)
                else:
                    if ahead is not None:
                        _apply_all(fold, await ahead, skip)
                    step = -(-len(page) // jobs) or 1
                    parts = [page[i : i + step] for i in range(0, len(page), step)]
                    ahead = asyncio.gather(
                        *(loop.run_in_executor(pool, project_values, p) for p in parts)
                    )
                if not rows:
                    if ahead is not None:
                        _apply_all(fold, await ahead, skip)
                    return fold
                last = rows[-1][0]
                fold.read += len(rows)
                if progress is not None:
                    progress.add(len(rows))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)


Projected = tuple[uuid.UUID, list[Change], str | None] | None
"""An event's id and changes, or the reason it is set aside; None for an undecodable one."""

RECORDED = "recorded by the ledger: PostgreSQL refused its projection"


def project_values(values: list[tuple[bytes, str]]) -> list[Projected]:
    """Decode and project archived values, each with its archived type (None for an
    undecodable one, which is parked on a dead-letter topic and projected by nobody): pure, so
    it can run in another process."""
    out: list[Projected] = []
    for value, event_type in values:
        env = _decoded(value, event_type)
        out.append(None if env is None else (env.event_id, *projected(env)))
    return out


def _apply_all(
    fold: ProjectionFold, parts: list[list[Projected]], skip: frozenset[uuid.UUID]
) -> None:
    for part in parts:
        for item in part:
            if item is None:
                continue
            event_id, changes, reason = item
            if reason is None and event_id in skip:
                reason = RECORDED
            if reason is not None:
                fold.set_aside[event_id] = reason
            else:
                fold.try_apply(event_id, changes)


TOPIC_RANK = {MATCHER_INPUTS.name: 1, MATCHES_EVENTS.name: 2}
"""Ties in producer time: inputs before the matcher's copies, copies before decisions."""


def log_order(records: Iterable[Record]) -> Iterator[Record]:
    """The topics' records as one log: each partition in offset order, partitions merged by
    producer timestamp (a decision is produced after what caused it), ties by topic rank.
    The ledger's archive order is one such merge; where producers' clocks tie or disagree,
    another merge can apply two unrelated events in the other order."""
    parts: dict[tuple[str, int], list[Record]] = defaultdict(list)
    for r in records:
        parts[(r.topic, r.partition)].append(r)
    return heapq.merge(
        *parts.values(),
        key=lambda r: (r.timestamp_ms, TOPIC_RANK.get(r.topic, 0), r.topic, r.partition),
    )


def fold_records(
    records: Iterable[Record],
    progress: Progress | None = None,
    watch: frozenset[tuple[str, tuple[Any, ...]]] | None = None,
    skip: frozenset[uuid.UUID] = frozenset(),
) -> ProjectionFold:
    """Fold records read from the topics, each event once, in `log_order`.

    A record whose `event_type` header names a type no read model depends on is not decoded.
    A header that lies can then only hide an event from the fold, and a hidden event that
    matters shows as a difference from the live tables: nothing wrong is hidden."""
    fold = ProjectionFold(watch=watch)
    seen: set[uuid.UUID] = set()
    with paused_gc():
        for n, r in enumerate(log_order(records), start=1):
            fold.read = n
            if progress is not None and n % 1000 == 0:
                progress.add(1000)
            if r.event_type is not None and r.event_type not in PROJECTED_TYPES:
                if r.event_id is not None:  # its id is taken, as in the archive
                    seen.add(r.event_id)
                continue
            try:
                env = decode(r.value, r.event_type)
            except DecodeError:
                continue
            if env.event_id not in seen:
                seen.add(env.event_id)
                if env.event_id in skip:
                    fold.set_aside[env.event_id] = RECORDED
                else:
                    fold.apply(env)
    return fold


async def _columns(conn: asyncpg.Connection, schema: str, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name, udt_name FROM information_schema.columns"
        " WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        schema,
        table,
    )
    return {r[0]: r[1] for r in rows}


async def _copy_rows(
    conn: asyncpg.Connection,
    scratch: str,
    table: str,
    types: dict[str, str],
    rows: list[dict[str, Any]],
) -> None:
    """COPY the rows into scratch.table, in binary. JSON columns travel as their text: the
    connection's JSON codec (Python objects, text format) is set aside for the COPY, because
    binary COPY takes JSON only as text, and put back after."""
    present = set().union(*(r.keys() for r in rows))  # rows of one table may differ in keys
    given = [c for c in types if c in present]
    as_text = {c for c in given if types[c] in ("json", "jsonb")}
    if as_text:
        records = [
            tuple(_json_text(r.get(c)) if c in as_text else r.get(c) for c in given) for r in rows
        ]
        for kind in ("json", "jsonb"):
            await conn.reset_type_codec(kind, schema="pg_catalog")
        try:
            await conn.copy_records_to_table(
                table, schema_name=scratch, columns=given, records=records
            )
        finally:
            await init_connection(conn)
    else:
        await conn.copy_records_to_table(
            table,
            schema_name=scratch,
            columns=given,
            records=[tuple(r.get(c) for c in given) for r in rows],
        )


def _json_text(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, default=str)


async def compare_projections(
    conn: asyncpg.Connection, fold: ProjectionFold, tables: Iterable[str], report: ProjectionReport
) -> None:
    """Copy the folded tables into a scratch schema and compare them with the live ones, row by
    row on the primary key. Must run inside a transaction the caller rolls back."""
    live = str(await conn.fetchval("SELECT current_schema()"))
    scratch = f"audit_replay_{secrets.token_hex(6)}"
    await conn.execute(f"CREATE SCHEMA {scratch}")
    for table in tables:
        types = await _columns(conn, live, table)
        await conn.execute(
            f"CREATE TABLE {scratch}.{table} (LIKE {live}.{table} INCLUDING DEFAULTS)"
        )
        rows = fold.rows(table)
        if rows:
            await _copy_rows(conn, scratch, table, types, rows)
        ignored = WALL_CLOCK_COLUMNS.get(table, ())
        report.ignored[table] = ignored
        await _compare_table(conn, live, scratch, table, list(types), ignored, fold, report)
    await conn.execute(f"DROP SCHEMA {scratch} CASCADE")


async def _compare_table(
    conn: asyncpg.Connection,
    live: str,
    scratch: str,
    table: str,
    cols: list[str],
    ignored: tuple[str, ...],
    fold: ProjectionFold,
    report: ProjectionReport,
) -> None:
    keys = TABLE_KEYS[table]
    compared = [c for c in cols if c not in ignored]
    on = " AND ".join(f"l.{k} = s.{k}" for k in keys)
    lrow = ", ".join(f"l.{c}" for c in compared)
    srow = ", ".join(f"s.{c}" for c in compared)
    distinct = f"ROW({lrow}) IS DISTINCT FROM ROW({srow})"
    base = f"FROM {live}.{table} l FULL JOIN {scratch}.{table} s ON {on} WHERE {distinct}"
    report.differences[table] = int(await conn.fetchval(f"SELECT count(*) {base}"))
    if not report.differences[table]:
        return
    order = ", ".join(f"coalesce(l.{k}, s.{k})" for k in keys)
    found = await conn.fetch(
        f"SELECT CASE WHEN l.{keys[0]} IS NULL THEN NULL ELSE to_jsonb(l) END AS live,"
        f" CASE WHEN s.{keys[0]} IS NULL THEN NULL ELSE to_jsonb(s) END AS replayed,"
        f" {', '.join(f'coalesce(l.{k}, s.{k}) AS k{i}' for i, k in enumerate(keys))}"
        f" {base} ORDER BY {order} LIMIT {SHOWN}"
    )
    for r in found:
        key = tuple(r[f"k{i}"] for i in range(len(keys)))
        lv, rv = r["live"], r["replayed"]
        kind = "extra" if rv is None else "missing" if lv is None else "different"
        changed = tuple(c for c in compared if lv and rv and lv.get(c) != rv.get(c))
        events = tuple(fold.writers.get((table, key), ()))
        report.shown.append(RowDifference(table, key, kind, changed, lv, rv, events))


@asynccontextmanager
async def scratch_snapshot(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """One REPEATABLE READ transaction, always rolled back: the archive and the live derived
    tables are read as of one instant (the ledger writes both in one transaction, so they agree
    at every instant), and what is made inside it (the scratch schema) is gone after."""
    tx = conn.transaction(isolation="repeatable_read")
    await tx.start()
    try:
        yield
    finally:
        await tx.rollback()


async def replay_projections(
    conn: asyncpg.Connection,
    records: Iterable[Record] | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> ProjectionReport:
    """Rebuild every read model from the archive (or from `records` read from the topics) and
    compare it with the live one, as of one snapshot of the database."""
    async with scratch_snapshot(conn):
        return await fold_and_compare(conn, records, progress, jobs)


async def fold_and_compare(
    conn: asyncpg.Connection,
    records: Iterable[Record] | None = None,
    progress: Progress | None = None,
    jobs: int = 1,
) -> ProjectionReport:
    """Fold the archive (or `records`) and compare every derived table with the live one; the
    rows found different are named with the events that wrote them (a second fold, watching
    only those rows). The one reading of the projections that `replay` and `verify` share.
    Must run inside `scratch_snapshot`."""
    report = ProjectionReport()
    started = time.monotonic()
    nothing: frozenset[tuple[str, tuple[Any, ...]]] = frozenset()
    skip = await refused_by_postgres(conn)
    if records is None:
        fold = await fold_archive(conn, progress, jobs=jobs, watch=nothing, skip=skip)
        tables = list(TABLE_KEYS)
    else:
        fold = fold_records(records, progress, watch=nothing, skip=skip)
        # from the topics there is no archive sequence to compare projected_events with
        tables = [t for t in TABLE_KEYS if t != "projected_events"]
    report.events = fold.read
    report.projected = fold.events
    report.set_aside = len(fold.set_aside)
    await compare_projections(conn, fold, tables, report)
    if report.shown:  # fold again, noting who wrote the rows found different
        watch = frozenset((d.table, d.key) for d in report.shown)
        again = (
            await fold_archive(conn, watch=watch, skip=skip)
            if records is None
            else fold_records(records, watch=watch, skip=skip)
        )
        report.shown = [
            replace(d, events=tuple(again.writers.get((d.table, d.key), ()))) for d in report.shown
        ]
    report.seconds = time.monotonic() - started
    return report


# ---- the matcher ----


@dataclass(frozen=True)
class DecisionDifference:
    """A decision the replay makes differently from (or not at all like) the logged one."""

    kind: str  # "differs", "missing" (not in the log), "unexplained" (no replay makes it)
    topic: str
    event_id: uuid.UUID
    event_type: str
    partition: int | None
    cause: uuid.UUID | None
    cause_type: str | None
    cause_position: int | None
    logged: bytes | None
    replayed: bytes | None

    def __str__(self) -> str:
        what = {
            "differs": "differs byte for byte from its replay",
            "missing": "is decided by the replay but not in the log",
            "unexplained": "is in the log but no replay of matcher.inputs decides it",
        }[self.kind]
        text = f"{self.event_type} {self.event_id} on {self.topic} {what}"
        if self.cause is not None:
            text += (
                f"\n    caused by {self.cause_type} {self.cause} (matcher.inputs partition"
                f" {self.partition}, input #{self.cause_position})"
            )
        if self.kind == "differs" and self.logged is not None and self.replayed is not None:
            at = next(
                (
                    i
                    for i, (a, b) in enumerate(zip(self.logged, self.replayed, strict=False))
                    if a != b
                ),
                min(len(self.logged), len(self.replayed)),
            )
            text += (
                f"\n    first difference at byte {at}:"
                f"\n    logged   …{self.logged[max(at - 40, 0) : at + 60]!r}"
                f"\n    replayed …{self.replayed[max(at - 40, 0) : at + 60]!r}"
            )
        return text


@dataclass
class MatcherReport:
    """What re-running the matcher over its logged inputs found."""

    inputs: int = 0
    decisions: int = 0
    partitions: int = 0
    seconds: float = 0.0
    differences: list[DecisionDifference] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


def replay_matcher(
    inputs: Mapping[int, Iterable[Record]],
    logged: Mapping[tuple[str, uuid.UUID], bytes],
    progress: Progress | None = None,
) -> MatcherReport:
    """Run a fresh PartitionMatcher over each partition's logged inputs, in order, and compare
    every output (id and exact bytes) with its logged copy. Pure apart from the progress bar.

    Dead letters carry the broker's timestamp of the poison record, which the archive does not
    keep: for them only the id is compared."""
    report = MatcherReport(partitions=len(inputs))
    started = time.monotonic()
    decided: set[uuid.UUID] = set()
    for partition, records in sorted(inputs.items()):
        proc = PartitionMatcher(partition)
        for position, record in enumerate(records):
            report.inputs += 1
            for out in process(proc, record):
                report.decisions += 1
                decided.add(out.event_id)
                copy = logged.get((out.topic, out.event_id))
                same = copy is not None and (copy == out.value or out.topic.endswith(".dlq"))
                if not same:
                    cause = record.event_id
                    report.differences.append(
                        DecisionDifference(
                            "differs" if copy is not None else "missing",
                            out.topic,
                            out.event_id,
                            out.event_type,
                            partition,
                            cause,
                            _type_of(record),
                            position,
                            copy,
                            out.value,
                        )
                    )
            if progress is not None:
                progress.add(1)
    for (topic, event_id), value in logged.items():
        if topic == MATCHES_EVENTS.name and event_id not in decided:
            report.differences.append(
                DecisionDifference(
                    "unexplained",
                    topic,
                    event_id,
                    _type_of_bytes(value),
                    None,
                    None,
                    None,
                    None,
                    value,
                    None,
                )
            )
    report.seconds = time.monotonic() - started
    return report


def _decoded(value: bytes, type_hint: str | None = None) -> Envelope[Message] | None:
    try:
        return decode(value, type_hint)
    except DecodeError:
        return None


def _type_of(record: Record) -> str | None:
    return record.event_type or _type_of_bytes(record.value)


def _type_of_bytes(value: bytes) -> str:
    try:
        return decode(value).event_type
    except DecodeError:
        return "Undecodable"


async def archived_matcher_log(
    conn: asyncpg.Connection,
) -> tuple[dict[int, list[Record]], dict[tuple[str, uuid.UUID], bytes]]:
    """matcher.inputs per partition in archive_seq order, and every archived copy of the
    matcher's outputs (matches.events, matcher.inputs, matcher.inputs.dlq) by (topic, id).

    Within a partition archive_seq is the log order: the ledger reads each partition in offset
    order and archives a batch in reading order. Offsets themselves are not: a topic restored
    from the archive after the broker forgot it is renumbered from 0, so later records can
    carry smaller offsets than earlier ones. A duplicate copy of an event is archived once (its
    first); the matcher ignores an event id it has seen, so the dropped copies decide nothing."""
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(
            "SELECT topic, event_id, kafka_partition, kafka_offset, kafka_key, value, headers"
            " FROM archive WHERE topic = ANY($1::text[]) ORDER BY kafka_partition, archive_seq",
            [MATCHER_INPUTS.name, MATCHES_EVENTS.name, f"{MATCHER_INPUTS.name}.dlq"],
        )
    inputs: dict[int, list[Record]] = defaultdict(list)
    logged: dict[tuple[str, uuid.UUID], bytes] = {}
    for r in rows:
        logged[(r["topic"], r["event_id"])] = r["value"]
        if r["topic"] == MATCHER_INPUTS.name:
            inputs[r["kafka_partition"]].append(
                Record(
                    r["topic"],
                    r["kafka_partition"],
                    r["kafka_offset"],
                    r["kafka_key"],
                    r["value"],
                    _headers(r["headers"]),
                )
            )
    return dict(inputs), logged


def kafka_matcher_log(
    records: Iterable[Record],
) -> tuple[dict[int, list[Record]], dict[tuple[str, uuid.UUID], bytes]]:
    """The same as `archived_matcher_log`, from records read from the topics (offset order)."""
    inputs: dict[int, list[Record]] = defaultdict(list)
    logged: dict[tuple[str, uuid.UUID], bytes] = {}
    for r in records:
        if r.event_id is not None:
            logged.setdefault((r.topic, r.event_id), r.value)
        if r.topic == MATCHER_INPUTS.name:
            inputs[r.partition].append(r)
    return dict(inputs), logged


# ---- invariants ----

INVARIANT_TYPES = frozenset(
    {
        "FundOpened",
        "DonationReceived",
        "DonationRefunded",
        "NeedPosted",
        "NeedAmended",
        "PledgeMade",
        "PledgeAmended",
        "MatchProposed",
        "MatchDeclined",
        "MatchWithdrawn",
        "NoShowRecorded",
        "MatchExpired",
        "MatchCompleted",
    }
)
"""The event types the invariant checks read; the rest are not decoded."""


async def check_archive(
    conn: asyncpg.Connection,
    progress: Progress | None = None,
    batch: int = BATCH,
    checker: InvariantChecker | None = None,
    after: int = 0,
) -> InvariantChecker:
    """Feed the archive, in archive_seq order and each event once, to the invariant checker
    (services/audit/reports/invariants.py says why that order is the meaningful one). Given a
    checker that has seen the archive up to `after`, it goes on from there: the checks are a
    fold."""
    checker = checker if checker is not None else InvariantChecker()
    last = after
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        while True:
            rows = await conn.fetch(
                "SELECT archive_seq, event_type, value FROM archive"
                " WHERE archive_seq > $1 ORDER BY archive_seq LIMIT $2",
                last,
                batch,
            )
            if not rows:
                checker.archive_seq = last
                return checker
            for _, event_type, value in rows:
                if event_type in INVARIANT_TYPES:
                    env = _decoded(value, event_type)
                    if env is not None:
                        checker.check(env)
            last = rows[-1][0]
            if progress is not None:
                progress.add(len(rows))


# ---- reading the topics ----


async def read_topics(bootstrap: str, topics: list[str], quiet_polls: int = 3) -> list[Record]:
    """Every record of `topics` from the beginning, each partition in offset order, read with
    aiokafka's batched fetches (several times faster than the tooling's kafka-python reader).
    "Caught up" is `quiet_polls` empty polls in a row, never an end offset (the embedded broker
    reports those short)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from services.platform.kafka import security

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=10,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        **security("aiokafka"),
    )
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(partitions_of(t))]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        out: list[Record] = []
        quiet = 0
        while quiet < quiet_polls:
            batch = await consumer.getmany(timeout_ms=100, max_records=20_000)
            quiet = 0 if batch else quiet + 1
            for messages in batch.values():
                out.extend(Record.of(m) for m in messages)
        return out
    finally:
        await consumer.stop()
