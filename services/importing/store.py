"""The import's writes, idempotent: running the same file twice changes nothing.

Organisations go through the operator's own code path (`services.operator.register`, what
`exchange orgs create` and `POST /v1/orgs` call), one savepoint per row inside a transaction
per batch: a name already registered is "unchanged" (never a second organisation, never a
second token); a name that only reads the same as a registered one is a bad row.

Volunteers are written in batches, many rows per transaction, through the gateway's outbox:
each row's `RegisterVolunteer` and `MakePledge` are the very messages `POST /v1/volunteers`
and `PUT /v1/volunteers/{id}/pledge` post (`services.gateway.writes.registration` and
`pledge_wire`; same envelope, actor, request hash and stored answer), so intake, the matcher
and the ledger see them as if the organisation had registered each volunteer by hand. The
volunteer's row, subject key, token and pledge ownership commit with them, together with the
row's entry in `volunteer_imports` (organisation, ref → volunteer): claimed first in the
transaction (`ON CONFLICT DO NOTHING`), so a rerun, or a second import of the same file
running at the same moment, writes nothing for a ref already there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg

from schemas.envelope import Actor
from schemas.messages import MakePledge
from schemas.sealed import new_key, subject_of
from schemas.topics import PLEDGES_POSTINGS
from services import operator, reference
from services.gateway.outbox import OutboxRow, Ownership, insert_rows
from services.gateway.postings import Posting, outbox_row, request_hash
from services.gateway.writes import pledge_problems, pledge_wire, registration
from services.identity import (
    OrganisationExists,
    Principal,
    issue_tokens,
    name_key,
)
from services.importing.reading import Table
from services.importing.reasons import Problem
from services.importing.rows import (
    OrgRow,
    VolunteerRow,
    listed_skills,
    org_rows,
    volunteer_rows,
)
from services.privacy import insert_keys

Progress = Callable[[int, int], None]
"""Told (rows done, rows to write) after each batch."""

VOLUNTEER_BATCH = 500
"""Volunteers per transaction: 1,000 outbox rows, one commit."""
ORG_BATCH = 100


@dataclass(frozen=True)
class Outcome:
    """What became of one good row: `created`, `unchanged` (already there), `differs` (there,
    and the row changed since: not applied) or, in a dry run, `would_create`."""

    line: int
    key: str
    status: str
    id: uuid.UUID | None = None


@dataclass(frozen=True)
class SignIn:
    """A new volunteer's or organisation's sign-in, handed back once and never stored."""

    ref: str
    name: str
    id: uuid.UUID
    token: str


@dataclass
class Report:
    """What an import did, or in a dry run would do."""

    what: str
    dry_run: bool
    rows: int
    encoding: str
    outcomes: list[Outcome] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    sign_ins: list[SignIn] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """How many rows ended how; `refused` counts bad rows (not problems)."""
        out = {"created": 0, "would_create": 0, "unchanged": 0, "differs": 0}
        for o in self.outcomes:
            out[o.status] += 1
        out["refused"] = len({p.line for p in self.problems})
        return out

    def as_dict(self, lang: str) -> dict[str, Any]:
        """The report as the HTTP API answers it (sign-ins included: shown once)."""
        return {
            "what": self.what,
            "dry_run": self.dry_run,
            "rows": self.rows,
            "encoding": self.encoding,
            **self.counts(),
            "problems": [p.as_dict(lang) for p in self.problems],
            "outcomes": [
                {
                    "line": o.line,
                    "key": o.key,
                    "status": o.status,
                    "id": str(o.id) if o.id else None,
                }
                for o in self.outcomes
            ],
            "sign_ins": [
                {"ref": s.ref, "name": s.name, "id": str(s.id), "token": s.token}
                for s in self.sign_ins
            ],
        }


def _quiet(done: int, total: int) -> None:
    return None


# ---- organisations ----


async def import_orgs(
    conn: asyncpg.Connection,
    actor: Actor,
    table: Table,
    *,
    dry_run: bool,
    progress: Progress = _quiet,
) -> Report:
    """Register the file's new organisations (the operator's act); report every row."""
    rows, problems = org_rows(table)
    report = Report("orgs", dry_run, len(table.rows), table.encoding, problems=problems)
    existing = await conn.fetch("SELECT org_id, name FROM organisations")
    exact = {r["name"]: r["org_id"] for r in existing}
    similar = {name_key(r["name"]): r["name"] for r in existing}
    todo: list[OrgRow] = []
    for row in rows:
        name = row.registration.name
        if name in exact:
            report.outcomes.append(Outcome(row.line, name, "unchanged", exact[name]))
        elif name_key(name) in similar:
            report.problems.append(_similar(row, similar[name_key(name)]))
        elif dry_run:
            report.outcomes.append(Outcome(row.line, name, "would_create"))
        else:
            todo.append(row)
    for start in range(0, len(todo), ORG_BATCH):
        async with conn.transaction():
            for row in todo[start : start + ORG_BATCH]:
                await _register(conn, actor, row, report)
        progress(min(start + ORG_BATCH, len(todo)), len(todo))
    report.problems.sort(key=lambda p: p.line)  # stable: columns stay in order
    report.outcomes.sort(key=lambda o: o.line)
    return report


async def _register(conn: asyncpg.Connection, actor: Actor, row: OrgRow, report: Report) -> None:
    r = row.registration
    try:
        org_id, token = await operator.register(conn, actor, r.kind, r.name, r.district, r.street)
    except OrganisationExists as exc:  # registered meanwhile (another operator, another run)
        if exc.same_name:
            report.outcomes.append(Outcome(row.line, r.name, "unchanged", exc.existing["org_id"]))
        else:
            report.problems.append(_similar(row, exc.existing["name"]))
        return
    report.outcomes.append(Outcome(row.line, r.name, "created", org_id))
    report.sign_ins.append(SignIn(r.kind.value, r.name, org_id, token))


def _similar(row: OrgRow, existing: str) -> Problem:
    return Problem(row.line, row.name_column, "row.similar_org", {"name": existing})


# ---- volunteers ----


async def import_volunteers(
    pool: asyncpg.Pool,
    registrar: Principal,
    table: Table,
    *,
    dry_run: bool,
    today: date,
    progress: Progress = _quiet,
    published: Callable[[list[OutboxRow]], None] | None = None,
    batch: int = VOLUNTEER_BATCH,
) -> Report:
    """Register the file's new volunteers with their pledges for `registrar` (a community or
    social organisation, checked by the caller); report every row. `published` is handed each
    committed batch's outbox rows (the gateway's relay publishes them at once; without it the
    relay's sweep finds them within seconds)."""
    # CPU work for a while: in a thread, so a gateway's event loop goes on serving meanwhile
    listed = listed_skills(await reference.load(pool))  # skills added at run time too
    rows, problems = await asyncio.to_thread(volunteer_rows, table, today, listed)
    report = Report("volunteers", dry_run, len(table.rows), table.encoding, problems=problems)
    checked: list[VolunteerRow] = []
    for row in rows:
        refused = await pledge_problems(pool, row.pledge)  # the gateway's own checks
        report.problems += [_api_problem(row.line, p) for p in refused]
        if not refused:
            checked.append(row)
    known = {
        r["ref"]: (r["volunteer_id"], r["row_hash"])
        for r in await pool.fetch(
            "SELECT ref, volunteer_id, row_hash FROM volunteer_imports"
            " WHERE org_id = $1 AND ref = ANY($2::text[])",
            registrar.id,
            [r.ref for r in checked],
        )
    }
    todo: list[VolunteerRow] = []
    for row in checked:
        if row.ref in known:
            vid, fingerprint = known[row.ref]
            status = "unchanged" if fingerprint == row.fingerprint else "differs"
            report.outcomes.append(Outcome(row.line, row.ref, status, vid))
        elif dry_run:
            report.outcomes.append(Outcome(row.line, row.ref, "would_create"))
        else:
            todo.append(row)
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        async with pool.acquire() as conn, conn.transaction():
            written = await _write_volunteers(conn, registrar, chunk, report)
        if published is not None:
            published(written)
        progress(min(start + batch, len(todo)), len(todo))
    report.problems.sort(key=lambda p: p.line)  # stable: columns stay in order
    report.outcomes.sort(key=lambda o: o.line)
    return report


async def _write_volunteers(
    conn: asyncpg.Connection, registrar: Principal, chunk: list[VolunteerRow], report: Report
) -> list[OutboxRow]:
    """One batch in the caller's transaction; the outbox rows written, in order."""
    ids = {row.ref: uuid.uuid4() for row in chunk}
    claimed = {
        r["ref"]
        for r in await conn.fetch(
            "INSERT INTO volunteer_imports (org_id, ref, volunteer_id, row_hash)"
            " SELECT $1, * FROM unnest($2::text[], $3::uuid[], $4::text[])"
            " ON CONFLICT (org_id, ref) DO NOTHING RETURNING ref",
            registrar.id,
            [r.ref for r in chunk],
            [ids[r.ref] for r in chunk],
            [r.fingerprint for r in chunk],
        )
    }
    fresh = [r for r in chunk if r.ref in claimed]
    for row in chunk:
        if row.ref not in claimed:  # another run claimed it first
            report.outcomes.append(Outcome(row.line, row.ref, "unchanged"))
    if not fresh:
        return []
    vids = [ids[r.ref] for r in fresh]
    keys = {subject_of("volunteer", v): new_key() for v in vids}
    await conn.execute(
        "INSERT INTO volunteers (volunteer_id, registered_by) SELECT unnest($1::uuid[]), $2",
        vids,
        registrar.id,
    )
    await insert_keys(conn, keys)
    tokens = await issue_tokens(conn, "volunteer", vids)
    outbox: list[OutboxRow] = []
    for row, vid, token in zip(fresh, vids, tokens, strict=True):
        key = keys[subject_of("volunteer", vid)]
        outbox.append(
            _posting(
                registrar,
                vid,
                "/v1/volunteers",
                row.volunteer,
                registration(vid, row.volunteer, key),
            )
        )
        outbox.append(
            _posting(
                registrar,
                vid,
                f"/v1/volunteers/{vid}/pledge",
                row.pledge,
                MakePledge(volunteer_id=vid, pledge=pledge_wire(vid, row.pledge, key)),
                owns=(Ownership("pledge", vid, registrar.id),),
            )
        )
        report.outcomes.append(Outcome(row.line, row.ref, "created", vid))
        report.sign_ins.append(SignIn(row.ref, row.volunteer.pseudonym, vid, token))
    await insert_rows(conn, outbox)
    return outbox


def _posting(
    registrar: Principal,
    volunteer_id: uuid.UUID,
    path: str,
    body: Any,
    payload: Any,
    owns: tuple[Ownership, ...] = (),
) -> OutboxRow:
    """The outbox row the API writes for this body at this path (same answer, same hash)."""
    posting_id = uuid.uuid4()
    return outbox_row(
        Posting(
            topic=PLEDGES_POSTINGS,
            key=volunteer_id,
            payload=payload,
            org_id=str(registrar.id),
            role=registrar.role,
            idempotency_key=None,
            request_hash=request_hash(path, body.model_dump(mode="json")),
            response={
                "posting_id": str(posting_id),
                "status": "accepted",
                "volunteer_id": str(volunteer_id),
                "links": {"posting": f"/v1/postings/{posting_id}"},
            },
            owns=owns,
        )
    )


def _api_problem(line: int, item: dict[str, str]) -> Problem:
    """A 422 item of the gateway (field, reason) as a row's problem."""
    column = item.get("field", "").removeprefix("body.").split(".")[0]
    return Problem(line, column, "row.invalid", {"error": item.get("reason", "")})
