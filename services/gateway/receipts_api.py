"""Donor receipts over HTTP (docs/receipts.md).

`GET /v1/receipts/{receipt_id}` is public: the receipt id is the capability (an HMAC of the
donation id, services/audit/evidence/receipt.py), so no sign-in is asked. It answers with
everything a holder needs to check the receipt without trusting this server: the archived
event's canonical bytes, its leaf index, the inclusion proof under the newest signed
checkpoint, the consistency proof from the checkpoint the receipt was issued with (`from`), and
every stored key hand-over (`key_rotations`), so that a holder who pinned an older key can follow
it to the key that signed the newest checkpoint (each statement is checked by the holder).
Proofs are computed from the stored content hashes; a row or hash changed since it was signed
makes them fail.

`GET /v1/funds/{fund_id}/donations/{donation_id}/receipt` is the foundation's: it issues the
receipt (its id, the public key and the checkpoint to pin in the link).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
import os
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, HTTPException, Query, Request

from schemas.common import Role
from services.audit.evidence.archive_row import ROW_COLUMNS, row_of
from services.audit.evidence.chain import content_bytes
from services.audit.evidence.checkpoint import Checkpoint, TreeHead, raw_public_key
from services.audit.evidence.database import stored_rotations
from services.audit.evidence.keys import fingerprint, key_path, load_key
from services.audit.evidence.merkle import consistency_proof, inclusion_proof, leaf_hash
from services.audit.evidence.proofs import checkpoint_json
from services.audit.evidence.receipt import Pinned, donation_of, pinned_fragment, receipt_id
from services.audit.evidence.rotation import rotation_json
from services.audit.reports.reading import load_books
from services.audit.reports.trail import allocate
from services.gateway.deps import Caller, Pool, require_owner, require_role
from services.gateway.limits import Refused
from services.settings import Settings

router = APIRouter(tags=["receipts"])

SLACK_SECONDS = 3
"""Added to the expected signing time in Retry-After: the ledger signs, then commits."""


def receipt_secret(settings: Settings) -> bytes:
    """EXCHANGE_RECEIPT_SECRET, else the secret file under the var dir (created once, 0600,
    atomically: two gateways starting together end up with one secret)."""
    if settings.receipt_secret:
        return settings.receipt_secret.encode()
    path = settings.var_dir / "keys" / "receipt-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32))
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip().encode()


def _secret(request: Request) -> bytes:
    state = request.app.state
    if not hasattr(state, "receipt_secret"):
        state.receipt_secret = receipt_secret(state.settings)
    secret: bytes = state.receipt_secret
    return secret


def public_key(settings: Settings) -> bytes | None:
    """The key receipts pin: the published one (EXCHANGE_AUDIT_PUBLIC_KEY), else the public
    half of the ledger's key file when this process can read it (the embedded exchange)."""
    if settings.audit_public_key:
        return bytes.fromhex(settings.audit_public_key.strip())
    path = key_path(settings)
    if not path.exists():
        return None
    return raw_public_key(load_key(path).public_key())


@dataclass(frozen=True)
class Archived:
    """The donation's archived event: its row and its place among the tree's leaves."""

    row: asyncpg.Record
    leaf_index: int


async def archived_donation(pool: asyncpg.Pool, donation_id: uuid.UUID) -> Archived | None:
    """The DonationReceived row of a donation (its first copy), and its 0-based leaf index."""
    row = await pool.fetchrow(
        f"SELECT {ROW_COLUMNS} FROM archive a WHERE a.archive_seq = ("
        " SELECT min(p.archive_seq) FROM projected_events p JOIN archive b"
        " ON b.archive_seq = p.archive_seq WHERE b.event_type = 'DonationReceived'"
        " AND convert_from(b.value, 'UTF8')::jsonb #>> '{payload,donation_id}' = $1)",
        str(donation_id),
    )
    if row is None:
        return None
    index = await pool.fetchval(
        "SELECT count(*) FROM archive WHERE archive_seq < $1", row["archive_seq"]
    )
    return Archived(row, int(index))


async def newest_checkpoint(pool: asyncpg.Pool) -> Checkpoint | None:
    """The checkpoint over the largest tree."""
    r = await pool.fetchrow(
        "SELECT tree_size, root_hash, chain_hash, signature, key_id FROM checkpoints"
        " ORDER BY tree_size DESC LIMIT 1"
    )
    if r is None:
        return None
    return Checkpoint(
        TreeHead(r["tree_size"], r["root_hash"], r["chain_hash"]), r["key_id"], r["signature"]
    )


async def _not_yet_signed(pool: asyncpg.Pool, settings: Settings, signed: int) -> Refused:
    """503 with Retry-After: when the ledger is expected to sign the rows after `signed`."""
    first = await pool.fetchval(
        "SELECT archived_at FROM archive ORDER BY archive_seq OFFSET $1 LIMIT 1", signed
    )
    now = datetime.now(UTC)
    due = (first or now) + timedelta(seconds=settings.checkpoint_every_seconds)
    wait = max(1, math.ceil((due - now).total_seconds()) + SLACK_SECONDS)
    return Refused(
        503,
        "not_yet_checkpointed",
        f"the donation is archived but no signed checkpoint covers it yet; the ledger signs one "
        f"by about {due.isoformat(timespec='seconds')} (every "
        f"{settings.checkpoint_every_seconds:g} s)",
        {"Retry-After": str(wait)},
    )


async def covered(
    pool: asyncpg.Pool, settings: Settings, donation_id: uuid.UUID
) -> tuple[Archived, Checkpoint]:
    """The donation's archived event and the newest checkpoint, which covers it; 404 when the
    donation is not archived, 503 (Retry-After) when no checkpoint covers it yet."""
    found = await archived_donation(pool, donation_id)
    if found is None:
        raise HTTPException(404, "no such donation in the archive (yet)")
    newest = await newest_checkpoint(pool)
    if newest is None or newest.head.tree_size <= found.leaf_index:
        raise await _not_yet_signed(pool, settings, newest.head.tree_size if newest else 0)
    return found, newest


async def _leaves(pool: asyncpg.Pool, size: int) -> list[bytes]:
    rows = await pool.fetch("SELECT content_hash FROM archive ORDER BY archive_seq LIMIT $1", size)
    return [leaf_hash(bytes(r["content_hash"] or b"")) for r in rows]


async def _paid_for(pool: asyncpg.Pool, donation_id: uuid.UUID) -> dict[str, Any]:
    """The donation as the books show it and where its money went (the trail's allocation
    rule, services/audit/trail.py): the exchange's account, not covered by the proofs."""
    books, _ = await load_books(pool)
    d = books.donations.get(donation_id)
    if d is None:
        return {}
    uses = []
    for p in allocate(books, d.fund_id):
        if p.donation_id != donation_id:
            continue
        need = books.needs.get(p.need_id) if p.need_id else None
        uses.append(
            {
                "use": p.use,
                "amount_minor": p.amount_minor,
                "need": {"category": need.category, "district": need.district} if need else None,
            }
        )
    fund = books.funds.get(d.fund_id)
    return {
        "donation": {
            "donation_id": str(donation_id),
            "fund_id": str(d.fund_id),
            "fund_name": fund.name if fund else None,
            "donor": d.donor,
            "amount": {"amount_minor": d.amount_minor, "currency": d.currency},
            "received_at": d.received_at.isoformat(),
        },
        "paid_for": uses,
    }


@router.get("/v1/receipts/{receipt}")
async def get_receipt(
    request: Request,
    pool: Pool,
    receipt: str,
    from_size: Annotated[
        int | None,
        Query(alias="from", ge=1, description="tree size of the checkpoint issued with"),
    ] = None,
) -> dict[str, Any]:
    """A donor's receipt with its proofs (public: the receipt id is the capability)."""
    donation_id = donation_of(_secret(request), receipt)
    if donation_id is None:
        raise HTTPException(404, "no such receipt")
    settings: Settings = request.app.state.settings
    found, newest = await covered(pool, settings, donation_id)
    size = newest.head.tree_size
    leaves = await _leaves(pool, size)
    consistency = None
    if from_size is not None and from_size <= size:
        consistency = {
            "from_size": from_size,
            "to_size": size,
            "proof": [p.hex() for p in consistency_proof(leaves, from_size)],
        }
    canonical = content_bytes(row_of(found.row))
    key = public_key(settings)
    async with pool.acquire() as conn:
        rotations = await stored_rotations(conn)
    return {
        "receipt_id": receipt,
        **await _paid_for(pool, donation_id),
        "event": {
            "canonical_bytes": base64.b64encode(canonical).decode("ascii"),
            "content_hash": bytes(found.row["content_hash"] or b"").hex(),
            "leaf_index": found.leaf_index,
            "archive_seq": found.row["archive_seq"],
        },
        "checkpoint": checkpoint_json(newest),
        "inclusion_proof": [p.hex() for p in inclusion_proof(leaves, found.leaf_index)],
        "consistency": consistency,
        "public_key": key.hex() if key else None,
        "key_rotations": [rotation_json(r) for r in rotations],
    }


@router.get("/v1/funds/{fund_id}/donations/{donation_id}/receipt", tags=["foundations"])
async def issue_receipt(
    request: Request, pool: Pool, who: Caller, fund_id: uuid.UUID, donation_id: uuid.UUID
) -> dict[str, Any]:
    """Issue a donation's receipt: its id and the anchor its link pins (the public key and the
    newest checkpoint, which covers the donation). Only the fund's foundation."""
    require_role(who, Role.FOUNDATION)
    await require_owner(pool, who, "fund", fund_id)
    settings: Settings = request.app.state.settings
    found, newest = await covered(pool, settings, donation_id)
    if str(fund_id) not in bytes(found.row["value"]).decode("utf-8", "replace"):
        raise HTTPException(404, "no such donation in this fund")
    key = public_key(settings)
    retry = {"Retry-After": str(settings.retry_after_seconds)}
    if key is None:
        raise Refused(
            503, "no_public_key", "the exchange's public key is not configured here", retry
        )
    if hashlib.sha256(key).digest() != newest.key_id:
        raise Refused(
            503,
            "key_mismatch",
            "the newest checkpoint is not signed by the published key "
            "(EXCHANGE_AUDIT_PUBLIC_KEY): not issuing receipts that would not verify",
            retry,
        )
    rid = receipt_id(_secret(request), donation_id)
    pinned = Pinned(key, newest)
    return {
        "receipt_id": rid,
        "path": f"/receipts/{rid}",
        "fragment": pinned_fragment(pinned),
        "issued": checkpoint_json(newest),
        "public_key": key.hex(),
        "fingerprint": fingerprint(Ed25519PublicKey.from_public_bytes(key)),
        **await _paid_for(pool, donation_id),
    }
