"""The read models and journal of one archived batch, written in a few statements.

Applying each change as its own SQL statement cost several round trips per event, and kept the
ledger at a few percent of a raw COPY. Instead, for a batch of newly archived events:
1. `project` gives every event's changes (pure);
2. the rows and journal balances those changes read are loaded, one query per table (the
   window);
3. the changes are applied to the window in archive order by `ProjectionFold`, the same fold
   the auditor's replay uses, so the ledger and the replay share one meaning of every change;
4. new rows, changed columns and journal lines are written back, a statement per table and
   shape.
All inside the caller's transaction, so the batch's archive rows, positions and projections
commit together or not at all.

One event must never stop the ledger (it used to: the batch failed, was read again, failed
again, forever). An event whose projection raises, or whose changes PostgreSQL would refuse, is
set aside instead of projected (`projected`, `ProjectionFold.try_apply`: the same rules the
auditor's replay applies, so replay still equals live). Should PostgreSQL refuse a batch all
the same, for a reason no rule foresaw, the batch's writes are rolled back to a savepoint and
the events are projected one by one, each in its own savepoint, so only the events PostgreSQL
refuses are set aside; the caller records those, and the replay honours the record.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg

from schemas.envelope import Envelope
from schemas.messages import Message
from services.domain.projection_fold import TABLE_KEYS, ProjectionFold, projected
from services.domain.projections import (
    Change,
    MatchDelivered,
    MatchEnded,
    NeedCompleted,
    NeedFilled,
    PledgeEnded,
    PledgeSet,
    Row,
    Update,
    pledged_account,
    volunteer_account,
)
from services.domain.set_aside import reason_of

log = logging.getLogger(__name__)

REFUSED_BY_POSTGRES = "PostgreSQL refused its projection: "
"""How the reason begins when PostgreSQL, not a rule, refused an event (the replay cannot
recompute these, so it reads them from `projection_set_aside`)."""

DATA_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # class 22: bad characters, values out of range, bad encodings
    asyncpg.IntegrityConstraintViolationError,  # class 23: a value a constraint refuses
    OverflowError,  # raised while encoding an argument, before anything is sent
    ValueError,
    TypeError,
)
"""Failures a row's own data causes, which happen again on every retry. Anything else (a lost
connection, a serialisation failure) is raised: retrying the batch may well succeed."""

READ_MODELS = ("rm_needs", "rm_funds", "rm_pledges", "rm_matches", "rm_refusals")
"""Tables the window loads rows of (each keyed by one uuid column)."""

TOUCHED_AT = {"rm_needs": "updated_at"}
"""Columns set to the ledger's clock when a row of that table changes (not replayed)."""


class Window:
    """What a batch's changes read: rows by key per table, and journal accounts."""

    def __init__(self) -> None:
        self.keys: dict[str, set[uuid.UUID]] = defaultdict(set)
        self.accounts: set[str] = set()

    def add(self, changes: list[Change]) -> None:
        """Note every row and balance these changes may read or write."""
        for c in changes:
            if isinstance(c, Row) and c.table in READ_MODELS:
                self.keys[c.table].add(c.values[TABLE_KEYS[c.table][0]])
                if c.table == "rm_matches":  # a later end or delivery moves its need
                    self.keys["rm_needs"].add(c.values["need_id"])
            elif isinstance(c, Update):
                self.keys[c.table].add(c.key_value)
            elif isinstance(c, NeedFilled | NeedCompleted):
                self.keys["rm_needs"].add(c.need_id)
            elif isinstance(c, MatchEnded | MatchDelivered):
                self.keys["rm_matches"].add(c.match_id)
            elif isinstance(c, PledgeSet | PledgeEnded):
                v = c.volunteer_id
                self.accounts |= {pledged_account(v), volunteer_account(v, "offered")}


async def project_batch(
    conn: asyncpg.Connection, events: Sequence[Envelope[Message]]
) -> dict[uuid.UUID, str]:
    """Apply the projections of `events` (each projected for the first time, in archive
    order) to the read models and the journal; return the events set aside, with why."""
    set_aside: dict[uuid.UUID, str] = {}
    changes = []
    for env in events:
        c, reason = projected(env)
        if reason is not None:
            set_aside[env.event_id] = reason
        else:
            changes.append((env, c))
    window = Window()
    for _, c in changes:
        window.add(c)
    fold, before = await _load(conn, window)
    applied = []
    for env, c in changes:
        reason = fold.try_apply(env.event_id, c)
        if reason is not None:
            set_aside[env.event_id] = reason
        else:
            applied.append(env)
    if not applied:
        return set_aside
    try:
        async with conn.transaction():  # a savepoint: a refused batch leaves nothing behind
            await _write(conn, fold, before)
    except DATA_ERRORS as exc:
        if len(applied) == 1:
            reason = REFUSED_BY_POSTGRES + reason_of(exc)
            log.warning(
                "PostgreSQL refused one event's projection: set aside",
                extra={"event_id": str(applied[0].event_id), "reason": reason},
            )
            set_aside[applied[0].event_id] = reason
        else:  # which event? each alone, in order, each on what the ones before it wrote
            for env in applied:
                set_aside.update(await project_batch(conn, [env]))
    return set_aside


async def _load(
    conn: asyncpg.Connection, window: Window
) -> tuple[ProjectionFold, dict[str, dict[tuple[Any, ...], dict[str, Any]]]]:
    """The window's rows and balances as a fold, and a copy of each loaded row as it was."""
    fold = ProjectionFold()
    before: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {t: {} for t in READ_MODELS}
    # matches first: the needs of the matches a batch ends or delivers are in the window too
    for table in ("rm_matches", *(t for t in READ_MODELS if t != "rm_matches")):
        keys = window.keys.get(table)
        if not keys:
            continue
        key = TABLE_KEYS[table][0]
        rows = await conn.fetch(f"SELECT * FROM {table} WHERE {key} = ANY($1::uuid[])", keys)
        for r in rows:
            row = dict(r)
            fold.tables[table][(row[key],)] = row
            before[table][(row[key],)] = dict(row)
            if table == "rm_matches":
                window.keys["rm_needs"].add(row["need_id"])
    if window.accounts:
        for r in await conn.fetch(
            "SELECT account, sum(amount_minor) AS balance FROM journal_lines"
            " WHERE account = ANY($1::text[]) GROUP BY account",
            list(window.accounts),
        ):
            fold.balances[r["account"]] = int(r["balance"])
    return fold, before


async def _write(
    conn: asyncpg.Connection,
    fold: ProjectionFold,
    before: dict[str, dict[tuple[Any, ...], dict[str, Any]]],
) -> None:
    """New rows inserted (if absent, as before), changed columns updated, journal appended."""
    for table in READ_MODELS:
        key = TABLE_KEYS[table][0]
        inserts: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
        updates: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
        for k, row in fold.tables[table].items():
            old = before[table].get(k)
            if old is None:
                cols = tuple(row)
                inserts[cols].append(tuple(row[c] for c in cols))
            elif row != old:
                cols = tuple(c for c in row if row[c] != old.get(c))
                updates[cols].append((row[key], *(row[c] for c in cols)))
        for cols, values in inserts.items():
            marks = ", ".join(f"${i}" for i in range(1, len(cols) + 1))
            await conn.executemany(
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"
                f" ON CONFLICT ({key}) DO NOTHING",
                values,
            )
        for cols, values in updates.items():
            sets = [f"{c} = ${i}" for i, c in enumerate(cols, start=2)]
            if table in TOUCHED_AT:
                sets.append(f"{TOUCHED_AT[table]} = now()")
            await conn.executemany(f"UPDATE {table} SET {', '.join(sets)} WHERE {key} = $1", values)
    lines = list(fold.tables["journal_lines"].values())
    if lines:
        await conn.execute(
            "INSERT INTO journal_lines (event_id, line_no, account, amount_minor, currency)"
            " SELECT * FROM unnest($1::uuid[], $2::smallint[], $3::text[], $4::bigint[],"
            " $5::text[]) ON CONFLICT DO NOTHING",
            [x["event_id"] for x in lines],
            [x["line_no"] for x in lines],
            [x["account"] for x in lines],
            [x["amount_minor"] for x in lines],
            [x["currency"] for x in lines],
        )
