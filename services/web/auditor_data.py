"""The auditor's pages and the public site's one door into services.audit.

Every import of services.audit for the web app and the event route is here, so the modules it
reads can move without the pages noticing. Nothing here decides who may see what: the pages
and routes check the role first (services.gateway.deps.require_role).
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.evidence.checkpoint import (
    ORIGIN,
    Checkpoint,
    TreeHead,
    key_id,
    raw_public_key,
)
from services.audit.evidence.database import trusted_keys, verify_archive
from services.audit.evidence.keys import fingerprint, key_path, load_key, public_key_from_text
from services.audit.evidence.merkle import inclusion_proof, leaf_hash, verify_inclusion
from services.audit.evidence.proofs import checkpoint_json
from services.audit.evidence.rotation import Rotation, rotation_json, rotation_problem
from services.audit.replay.derived import verify_derived
from services.audit.replay.rebuild import (
    Progress,
    archived_matcher_log,
    check_archive,
    replay_matcher,
    replay_projections,
)
from services.audit.reports import disclosure as _disclosure
from services.audit.reports.api_data import disclosure_report, sequence_report
from services.audit.reports.books import Books, fold
from services.audit.reports.reading import first_sightings, organisation_names
from services.platform.db import connect
from services.settings import Settings
from services.web.jobs import Job, Work
from services.web.transparency import DonationFact, FundFact, MatchFact, NeedFact

Disclosure = _disclosure.Disclosure
to_csv = _disclosure.to_csv
QUARTER_PATTERN = _disclosure.QUARTER_PATTERN
SHOWN = 20
"""Differences or findings listed in a job's result (all are counted)."""


# ---- keys ----


@dataclass(frozen=True)
class KeyInfo:
    """A public key as published: hex, fingerprint (key id in groups of four), where from."""

    public_key: str
    fingerprint: str
    key_id: str
    source: str
    """"pinned" (EXCHANGE_AUDIT_PUBLIC_KEY) or "ledger" (read from the ledger's key file)."""


def pinned_key(settings: Settings) -> Ed25519PublicKey | None:
    """The key auditors pinned (EXCHANGE_AUDIT_PUBLIC_KEY), or None when none is configured.
    The ledger's own key file is never a trust anchor (docs/audit.md, "Threat model")."""
    if not settings.audit_public_key:
        return None
    return public_key_from_text(settings.audit_public_key)


def _info(key: Ed25519PublicKey, source: str) -> KeyInfo:
    return KeyInfo(raw_public_key(key).hex(), fingerprint(key), key_id(key).hex(), source)


def published_key(settings: Settings) -> KeyInfo | None:
    """The key to show donors: the pinned one, else the one in the ledger's key file when this
    process can read it (the embedded exchange); None when neither is available."""
    pinned = pinned_key(settings)
    if pinned is not None:
        return _info(pinned, "pinned")
    path: Path = key_path(settings)
    try:
        return _info(load_key(path).public_key(), "ledger")
    except (OSError, SystemExit, ValueError):
        return None


@dataclass(frozen=True)
class Handover:
    """A key hand-over as the `key_rotations` table holds it (docs/audit.md, Key rotation)."""

    old_fingerprint: str
    new_fingerprint: str
    after: int
    valid: bool
    at: datetime


async def signed_checkpoints(pool: asyncpg.Pool, tree_size: int | None = None) -> list[Any]:
    """The signed checkpoints, newest first (or the one of `tree_size`), each as the
    CheckpointRecorded payload a witness file and `exchange audit verify --held` read."""
    rows = await pool.fetch(
        "SELECT tree_size, root_hash, chain_hash, signature, key_id, created_at FROM checkpoints"
        " WHERE $1::bigint IS NULL OR tree_size = $1 ORDER BY tree_size DESC",
        tree_size,
    )
    return [
        {
            "origin": ORIGIN,
            **checkpoint_json(
                Checkpoint(
                    TreeHead(r["tree_size"], r["root_hash"], r["chain_hash"]),
                    r["key_id"],
                    r["signature"],
                )
            ),
            "signed_at": r["created_at"].isoformat(),
        }
        for r in rows
    ]


async def rotation_statements(pool: asyncpg.Pool) -> list[dict[str, object]]:
    """Every key hand-over as its signed statement (services/audit/evidence/rotation.py)."""
    rows = await pool.fetch(
        "SELECT old_public_key, new_public_key, after, old_signature, new_signature"
        " FROM key_rotations ORDER BY after, created_at"
    )
    return [
        rotation_json(
            Rotation(
                r["old_public_key"],
                r["new_public_key"],
                r["after"],
                r["old_signature"],
                r["new_signature"],
            )
        )
        for r in rows
    ]


async def handovers(pool: asyncpg.Pool) -> list[Handover]:
    """Every recorded hand-over, oldest first, each checked under both keys it names."""
    rows = await pool.fetch(
        "SELECT old_public_key, new_public_key, after, old_signature, new_signature, created_at"
        " FROM key_rotations ORDER BY after, created_at"
    )
    out = []
    for r in rows:
        rot = Rotation(
            r["old_public_key"],
            r["new_public_key"],
            r["after"],
            r["old_signature"],
            r["new_signature"],
        )
        out.append(
            Handover(
                fingerprint(Ed25519PublicKey.from_public_bytes(bytes(r["old_public_key"]))),
                fingerprint(Ed25519PublicKey.from_public_bytes(bytes(r["new_public_key"]))),
                r["after"],
                rotation_problem(rot) is None,
                r["created_at"],
            )
        )
    return out


# ---- the latest signed checkpoint ----


async def checkpoint_status(pool: asyncpg.Pool, settings: Settings) -> dict[str, Any]:
    """The latest checkpoint the ledger stored: size, root, when, and whether its signature is
    valid under the pinned key (following hand-overs); `valid` is None with no pinned key."""
    row = await pool.fetchrow(
        "SELECT tree_size, root_hash, chain_hash, key_id, signature, created_at"
        " FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
    )
    pinned = pinned_key(settings)
    out: dict[str, Any] = {"pinned": pinned is not None, "checked_at": datetime.now(UTC)}
    if row is None:
        return {**out, "checkpoint": None, "valid": None, "problem": None}
    cp = _checkpoint(row)
    problem = None
    if pinned is not None:
        async with pool.acquire() as conn:
            ring = await trusted_keys(conn, pinned)
        problem = ring.problems[0] if ring.problems else ring.problem(cp)
    return {
        **out,
        "checkpoint": {**checkpoint_json(cp), "created_at": row["created_at"]},
        "valid": None if pinned is None else problem is None,
        "problem": problem,
    }


def _checkpoint(row: asyncpg.Record) -> Checkpoint:
    return Checkpoint(
        TreeHead(row["tree_size"], row["root_hash"], row["chain_hash"]),
        row["key_id"],
        row["signature"],
    )


# ---- one archived event and its inclusion proof ----


async def event_evidence(
    pool: asyncpg.Pool, event_id: uuid.UUID, settings: Settings
) -> dict[str, Any] | None:
    """An archived event as stored (its JSON), where it sits in the archive, and the RFC 6962
    inclusion proof of its leaf under the latest signed checkpoint that covers it (None while
    no checkpoint covers it yet), checked here against the checkpoint's root and, when a key
    is pinned, the signature. None: no such event in the archive."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT archive_seq, topic, kafka_partition, kafka_offset, event_type, value,"
            " content_hash, recorded_at FROM archive WHERE event_id = $1 ORDER BY archive_seq",
            event_id,
        )
        if not rows:
            return None
        first = rows[0]
        index = await conn.fetchval(
            "SELECT count(*) FROM archive WHERE archive_seq < $1", first["archive_seq"]
        )
        covering = await conn.fetchrow(
            "SELECT tree_size, root_hash, chain_hash, key_id, signature, created_at"
            " FROM checkpoints WHERE tree_size > $1 ORDER BY tree_size DESC LIMIT 1",
            index,
        )
        inclusion = None
        if covering is not None:
            cp = _checkpoint(covering)
            hashes = await conn.fetch(
                "SELECT content_hash FROM archive ORDER BY archive_seq LIMIT $1",
                cp.head.tree_size,
            )
            leaves = [leaf_hash(bytes(h["content_hash"] or b"")) for h in hashes]
            proof = inclusion_proof(leaves, index)
            leaf = leaf_hash(bytes(first["content_hash"] or b""))
            pinned = pinned_key(settings)
            signature = None
            if pinned is not None:
                ring = await trusted_keys(conn, pinned)
                signature = not ring.problems and ring.problem(cp) is None
            inclusion = {
                "checkpoint": {**checkpoint_json(cp), "created_at": covering["created_at"]},
                "leaf_index": index,
                "leaf_hash": leaf.hex(),
                "proof": [p.hex() for p in proof],
                "root_matches": verify_inclusion(
                    index, cp.head.tree_size, leaf, proof, cp.head.root_hash
                ),
                "signature_valid": signature,
            }
    try:
        value: Any = json.loads(bytes(first["value"]))
    except ValueError:
        value = bytes(first["value"]).decode("utf-8", "replace")
    return {
        "event_id": str(event_id),
        "event_type": first["event_type"],
        "archive_seq": first["archive_seq"],
        "topic": first["topic"],
        "partition": first["kafka_partition"],
        "offset": first["kafka_offset"],
        "recorded_at": first["recorded_at"].isoformat() if first["recorded_at"] else None,
        "content_hash": bytes(first["content_hash"] or b"").hex(),
        "also_on": [r["topic"] for r in rows[1:]],
        "value": value,
        "inclusion": inclusion,
    }


# ---- disclosure ----


async def disclosure(pool: asyncpg.Pool, fund_id: uuid.UUID, quarter: str) -> Disclosure:
    """A fund's quarterly report (KeyError: no such fund by the quarter's end)."""
    return await disclosure_report(pool, fund_id, quarter)


# ---- the checks, as jobs ----
# Unlike the commands, the jobs do not pause the cyclic garbage collector
# (services/platform/gc_pause.py): it is process-wide, and the gateway serving requests
# beside the job must keep collecting. A replay in the gateway is slower than the command's.


class _Meter(Progress):
    """The replay's progress bar, reporting to a job instead of a terminal."""

    def __init__(self, job: Job, label: str, total: int | None = None) -> None:
        super().__init__(label, total, io.StringIO())
        self.job = job

    def add(self, n: int) -> None:
        super().add(n)
        self.job.advance(self.done, self.total)


def verify_work(dsn: str, settings: Settings) -> Work:
    """`exchange audit verify` with the pinned key: the chain, every signed checkpoint, then
    the journal and read models against a fold of the archive."""

    def work(job: Job) -> dict[str, Any]:
        pinned = pinned_key(settings)
        if pinned is None:
            return {"ok": None, "headline": "no_key", "lines": []}

        async def run() -> dict[str, Any]:
            conn = await connect(dsn)
            try:
                finding, summary = await verify_archive(conn, pinned, job.advance)
                if finding is not None:
                    return {"ok": False, "headline": "broken", "lines": [str(finding)]}
                job.done, job.total = 0, None
                derived = await verify_derived(conn, summary, _Meter(job, "derived"))
            finally:
                await conn.close()
            lines = [
                f"{summary.events} events, {summary.checkpoints} signed checkpoints",
                f"tree head size {summary.head.tree_size} root {summary.head.root_hash.hex()}",
            ]
            if derived.finding is not None:
                return {"ok": False, "headline": "broken", "lines": [str(derived.finding)]}
            if derived.report is not None and not derived.report.equal:
                shown = [str(d) for d in derived.report.shown[:SHOWN]]
                return {"ok": False, "headline": "derived", "lines": lines + shown}
            return {"ok": True, "headline": "verified", "lines": lines}

        return asyncio.run(run())

    return work


def invariants_work(dsn: str) -> Work:
    """`exchange audit invariants`: the whole log against the exchange's promises."""

    def work(job: Job) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            conn = await connect(dsn)
            try:
                total = await conn.fetchval("SELECT count(*) FROM archive")
                checker = await check_archive(conn, _Meter(job, "invariants", total))
            finally:
                await conn.close()
            now = datetime.now(UTC)
            violations = checker.verdict(now)
            lines = [str(v) for v in violations[:SHOWN]]
            lines += [f"pending: {p}" for p in checker.pending(now)]
            return {
                "ok": not violations,
                "headline": "clean" if not violations else "violations",
                "count": len(violations),
                "events": checker.events,
                "lines": lines,
            }

        return asyncio.run(run())

    return work


def sequences_work(dsn: str) -> Work:
    """`exchange audit sequences --rescan`: gaps, late and repeated numbers in every stream."""

    def work(job: Job) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            conn = await connect(dsn)
            try:
                found = await sequence_report(conn, rescan=True)
            finally:
                await conn.close()
            job.advance(1, 1)
            lines = [
                f"{a['kind']} in {a['stream_id']}: expected {a['expected_seq']}, got "
                f"{a['got_seq']} ({a['event_type']} {a['event_id']})"
                for a in found[:SHOWN]
            ]
            return {
                "ok": not found,
                "headline": "no_gaps" if not found else "gaps",
                "count": len(found),
                "lines": lines,
            }

        return asyncio.run(run())

    return work


def replay_work(dsn: str) -> Work:
    """`exchange audit replay` from the archive: every read model and every matching decision
    rebuilt from the log and compared with live, differences named with their events."""

    def work(job: Job) -> dict[str, Any]:
        async def run() -> dict[str, Any]:
            conn = await connect(dsn)
            try:
                total = await conn.fetchval("SELECT count(*) FROM archive")
                proj = await replay_projections(conn, None, _Meter(job, "projections", total))
                inputs, logged = await archived_matcher_log(conn)
            finally:
                await conn.close()
            matcher = replay_matcher(inputs, logged)
            lines = [str(d) for d in proj.shown[:SHOWN]]
            lines += [str(m) for m in matcher.differences[:SHOWN]]
            return {
                "ok": proj.equal and matcher.equal,
                "headline": "equal" if proj.equal and matcher.equal else "different",
                "projections_equal": proj.equal,
                "matcher_equal": matcher.equal,
                "events": proj.events,
                "decisions": matcher.decisions,
                "tables": dict(proj.differences),
                "lines": lines,
            }

        return asyncio.run(run())

    return work


# ---- the public site's facts ----


async def public_facts(
    pool: asyncpg.Pool,
) -> tuple[list[NeedFact], list[MatchFact], list[DonationFact], list[FundFact]]:
    """The facts the transparency site may be computed from, folded from the archive (the
    books every report reads): no titles, descriptions, pseudonyms or donor labels."""
    events = await first_sightings(pool)
    books = fold(events)
    names = await organisation_names(pool)
    return _facts(books, names)


def _facts(
    books: Books, names: dict[str, str]
) -> tuple[list[NeedFact], list[MatchFact], list[DonationFact], list[FundFact]]:
    needs = [NeedFact(n.need_id, n.category, n.district, n.status) for n in books.needs.values()]
    matches = [
        MatchFact(
            m.need_id,
            m.terms.fund_id,
            m.terms.amount_minor,
            m.minutes_served if m.minutes_served is not None else None,
            m.status,
            m.settled_at,
        )
        for m in books.matches.values()
    ]
    donations = [
        DonationFact(d.fund_id, d.amount_minor, d.refunded_minor, d.received_at)
        for d in books.donations.values()
    ]
    funds = []
    for f in books.funds.values():
        spec = f.spec
        cap = spec.get("cap_per_need") or None
        until = spec.get("valid_until")
        funds.append(
            FundFact(
                f.fund_id,
                f.name,
                names.get(f.org_id, str(spec.get("foundation", ""))),
                f.currency,
                tuple(str(c) for c in spec.get("categories") or ()),
                tuple(str(d) for d in spec.get("districts") or ()),
                int(cap["amount_minor"]) if isinstance(cap, dict) else None,
                datetime.fromisoformat(str(until)) if until else None,
                f.urgent_reserve_percent,
            )
        )
    return needs, matches, donations, funds
