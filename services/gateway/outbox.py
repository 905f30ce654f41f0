"""Group commit of the outbox: the postings of many concurrent requests in one transaction.

Each request hands its row to the `OutboxWriter` and waits; the writer takes everything that
is waiting (up to a batch), writes it in one transaction of a few statements, commits, and
only then answers each request. So durability before acknowledgement holds for every posting,
while one commit (one WAL flush) and a handful of round trips serve a whole batch instead of
one posting. Nobody waits for a batch to fill: a batch is whatever arrived while the previous
one was being written, so a lone request is written at once.

A failure inside a batch's transaction (a bad row, a side effect that raises) rolls the batch
back and each of its rows is written again alone, so only the request that caused it fails.
When the failure is the database itself (unreachable, disk full: `unavailable_reason`), every
request of the batch fails at once with it, and the gateway answers each 503.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from services.platform.db import unavailable_reason

log = logging.getLogger(__name__)

NEAR_DUPLICATE_SECONDS = 24 * 3600.0
"""How far back a need with the same category, place and window counts as a near-duplicate."""

NEAR_DUPLICATES_SHOWN = 5
"""Most near-duplicates named in one warning."""


class IdempotencyConflict(Exception):
    """The same Idempotency-Key was used before with a different request."""


@dataclass(frozen=True)
class Ownership:
    """An ownership row written with a posting that creates a fund, a need (or each week's
    need of a weekly one) or a pledge."""

    resource: str
    resource_id: uuid.UUID
    org_id: uuid.UUID


@dataclass(frozen=True)
class OutboxRow:
    """One posting as the outbox stores it: the exact bytes that go on the topic, who posted it,
    the answer to give (and to give again to a retry), and what else to write with it.

    `fingerprint` asks for a near-duplicate check (needs); `also` runs on the transaction's
    connection after the row is in (registrations), only for a new posting."""

    posting_id: uuid.UUID
    topic: str
    kafka_key: bytes
    value: bytes
    event_type: str
    org_id: str
    idempotency_key: str | None
    request_hash: str
    response: dict[str, Any]
    fingerprint: str | None = None
    owns: tuple[Ownership, ...] = ()
    also: Callable[[asyncpg.Connection], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Written:
    """What the outbox holds for a request: the answer, and whether it is the stored answer of
    an earlier request with the same Idempotency-Key (`replayed`, nothing new written)."""

    response: dict[str, Any]
    replayed: bool


@dataclass
class _Waiting:
    row: OutboxRow
    done: asyncio.Future[Written] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


class OutboxWriter:
    """Writes outbox rows in batches; `write` returns only after the row's batch committed."""

    def __init__(self, pool: asyncpg.Pool, max_batch: int = 200, writers: int = 2) -> None:
        """`writers` batches may be in flight at once (one fills while another commits); each
        holds one pooled connection while it writes."""
        self.pool = pool
        self.max_batch = max_batch
        self.writers = writers
        self._queue: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.batches_written = 0
        """Transactions committed (for /metrics: rows per batch shows how much is shared)."""
        self.rows_written = 0
        """Postings committed through this writer."""

    def start(self) -> None:
        """Start the writer tasks (in the running event loop)."""
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self.writers)]

    async def stop(self) -> None:
        """Write everything already handed over (the batches in flight finish), then stop."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._queue:  # rows sent back for another try as the writers stopped
            await self._write_batch(self._take())

    async def write(self, row: OutboxRow) -> Written:
        """Durably record `row` (or find the stored answer of a retry); raises
        IdempotencyConflict for a reused key with another request. Returns after commit."""
        waiting = _Waiting(row)
        # the answer of a request that went away meanwhile is dropped without a warning
        waiting.done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._queue.append(waiting)
        self._wake.set()
        # shielded: a client that goes away must not cancel a batch that others wait on
        return await asyncio.shield(waiting.done)

    def _take(self) -> list[_Waiting]:
        """The next batch, oldest first. A second row with the same Idempotency-Key as one
        already in the batch waits for the next batch, where it finds the first one stored."""
        batch: list[_Waiting] = []
        keys: set[tuple[str, str]] = set()
        rest: list[_Waiting] = []
        for w in self._queue:
            k = w.row.idempotency_key
            if len(batch) >= self.max_batch or (k is not None and (w.row.org_id, k) in keys):
                rest.append(w)
                continue
            if k is not None:
                keys.add((w.row.org_id, k))
            batch.append(w)
        self._queue = rest
        if not rest:
            self._wake.clear()
        return batch

    async def _run(self) -> None:
        while True:
            if not self._stopping:
                await self._wake.wait()
            batch = self._take()
            if batch:
                await self._write_batch(batch)
            elif self._stopping:
                return

    async def _write_batch(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = await self._transaction([w.row for w in batch])
        except asyncio.CancelledError:
            self._queue[:0] = batch  # written by stop(), or by nobody if the loop is gone
            raise
        except Exception as exc:
            if len(batch) == 1 or unavailable_reason(exc) is not None:
                # the database cannot take any row now: trying each alone would only make the
                # last request wait for every other's failure
                for w in batch:
                    _settle(w, exc)
                return
            log.warning(
                "outbox batch failed; writing its rows one by one",
                extra={"rows": len(batch), "error": repr(exc)},
            )
            for w in batch:
                await self._write_batch([w])
            return
        self.batches_written += 1
        self.rows_written += sum(1 for o in outcomes if isinstance(o, Written) and not o.replayed)
        retry = []
        for w, outcome in zip(batch, outcomes, strict=True):
            if outcome is None:  # a concurrent writer stored the same key first
                retry.append(w)
            else:
                _settle(w, outcome)
        if retry:
            self._queue[:0] = retry
            self._wake.set()

    async def _transaction(self, rows: list[OutboxRow]) -> list[Written | Exception | None]:
        """Write `rows` in one transaction; per row its outcome (None: try again)."""
        async with self.pool.acquire() as conn, conn.transaction():
            outcomes: list[Written | Exception | None] = [None] * len(rows)
            priors = await _stored_answers(conn, rows)
            fresh: list[int] = []
            for i, row in enumerate(rows):
                prior = priors.get((row.org_id, row.idempotency_key or ""))
                if row.idempotency_key is None or prior is None:
                    fresh.append(i)
                elif prior[0] != row.request_hash:
                    outcomes[i] = IdempotencyConflict()
                else:
                    outcomes[i] = Written(prior[1], replayed=True)
            responses = await _flag_near_duplicates(conn, [rows[i] for i in fresh])
            inserted = await _insert(conn, [rows[i] for i in fresh], responses)
            new = [i for i in fresh if rows[i].posting_id in inserted]
            await _insert_ownership(conn, [o for i in new for o in rows[i].owns])
            for i in new:
                also = rows[i].also
                if also is not None:
                    await also(conn)
                outcomes[i] = Written(responses[rows[i].posting_id], replayed=False)
        return outcomes


async def insert_rows(conn: asyncpg.Connection, rows: list[OutboxRow]) -> None:
    """Insert rows without an Idempotency-Key and their ownership on the caller's transaction
    (the bulk import's batches, whose idempotency is its own table). `also` hooks are not run:
    the caller writes its side rows itself, for the whole batch at once."""
    if any(r.idempotency_key is not None or r.also is not None for r in rows):
        raise ValueError("insert_rows takes rows without Idempotency-Key or `also`")
    await _insert(conn, rows, {r.posting_id: r.response for r in rows})
    await _insert_ownership(conn, [o for r in rows for o in r.owns])


def _settle(waiting: _Waiting, outcome: Written | Exception) -> None:
    if waiting.done.done():
        return
    if isinstance(outcome, Exception):
        waiting.done.set_exception(outcome)
    else:
        waiting.done.set_result(outcome)


async def _stored_answers(
    conn: asyncpg.Connection, rows: list[OutboxRow]
) -> dict[tuple[str, str], tuple[str, dict[str, Any]]]:
    """(request hash, answer) already stored for each (organisation, Idempotency-Key)."""
    keyed = [r for r in rows if r.idempotency_key is not None]
    if not keyed:
        return {}
    found = await conn.fetch(
        "SELECT p.org_id, p.idempotency_key, p.request_hash, p.response"
        " FROM unnest($1::text[], $2::text[]) AS k(org_id, idempotency_key)"
        " JOIN postings p ON p.org_id = k.org_id AND p.idempotency_key = k.idempotency_key",
        [r.org_id for r in keyed],
        [r.idempotency_key for r in keyed],
    )
    return {(r["org_id"], r["idempotency_key"]): (r["request_hash"], r["response"]) for r in found}


async def _flag_near_duplicates(
    conn: asyncpg.Connection, rows: list[OutboxRow]
) -> dict[uuid.UUID, dict[str, Any]]:
    """Each row's answer, with a warning naming recent postings of the same organisation that
    look the same (same category, place and window), newest first, earlier rows of this batch
    included. They are flagged, never merged."""
    answers = {r.posting_id: r.response for r in rows}
    checked = [r for r in rows if r.fingerprint is not None]
    if not checked:
        return answers
    found = await conn.fetch(
        "SELECT q.i, d.need_id"
        " FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(org_id, fingerprint, i)"
        " CROSS JOIN LATERAL ("
        "   SELECT p.response->>'need_id' AS need_id FROM postings p"
        "   WHERE p.org_id = q.org_id AND p.fingerprint = q.fingerprint"
        "   AND p.accepted_at > now() - make_interval(secs => $3)"
        "   ORDER BY p.accepted_at DESC, p.seq DESC LIMIT $4) d",
        [r.org_id for r in checked],
        [r.fingerprint for r in checked],
        NEAR_DUPLICATE_SECONDS,
        NEAR_DUPLICATES_SHOWN,
    )
    stored: dict[int, list[str]] = {}
    for rec in found:
        stored.setdefault(rec["i"] - 1, []).append(rec["need_id"])
    earlier: dict[tuple[str, str | None], list[str]] = {}
    for n, r in enumerate(checked):
        same = earlier.setdefault((r.org_id, r.fingerprint), [])
        need_ids = (same[::-1] + stored.get(n, []))[:NEAR_DUPLICATES_SHOWN]
        if need_ids:
            answers[r.posting_id] = r.response | {
                "warnings": [
                    {
                        "kind": "possible_duplicate",
                        "message": "a need with the same category, place and window was "
                        "posted recently by your organisation; both are kept",
                        "need_ids": need_ids,
                    }
                ]
            }
        if "need_id" in r.response:
            same.append(r.response["need_id"])
    return answers


async def _insert(
    conn: asyncpg.Connection, rows: list[OutboxRow], responses: dict[uuid.UUID, dict[str, Any]]
) -> set[uuid.UUID]:
    """Insert the rows in one statement; the ids actually inserted (a row whose key another
    writer stored meanwhile is skipped)."""
    if not rows:
        return set()
    done = await conn.fetch(
        "INSERT INTO postings (posting_id, topic, kafka_key, value, event_type, org_id,"
        " idempotency_key, request_hash, response, fingerprint)"
        " SELECT posting_id, topic, kafka_key, value, event_type, org_id, idempotency_key,"
        " request_hash, response::jsonb, fingerprint"
        " FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::bytea[], $5::text[], $6::text[],"
        " $7::text[], $8::text[], $9::text[], $10::text[]) WITH ORDINALITY AS r(posting_id,"
        " topic, kafka_key, value, event_type, org_id, idempotency_key, request_hash, response,"
        " fingerprint, n) ORDER BY n"
        " ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL"
        " DO NOTHING RETURNING posting_id",
        [r.posting_id for r in rows],
        [r.topic for r in rows],
        [r.kafka_key for r in rows],
        [r.value for r in rows],
        [r.event_type for r in rows],
        [r.org_id for r in rows],
        [r.idempotency_key for r in rows],
        [r.request_hash for r in rows],
        [_json(responses[r.posting_id]) for r in rows],
        [r.fingerprint for r in rows],
    )
    return {rec["posting_id"] for rec in done}


async def _insert_ownership(conn: asyncpg.Connection, rows: list[Ownership]) -> None:
    if not rows:
        return
    await conn.execute(
        "INSERT INTO ownership (resource, resource_id, org_id)"
        " SELECT * FROM unnest($1::text[], $2::uuid[], $3::uuid[])",
        [o.resource for o in rows],
        [o.resource_id for o in rows],
        [o.org_id for o in rows],
    )
