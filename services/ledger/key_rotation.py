"""The ledger hands its signing key over to a new one, at start, when the operator left one ready.

`exchange ledger rotate-key` writes a new private key beside the current one, as
`<key file>.next` (mode 0600). At its next start the ledger, before it signs anything:

1. signs, with the old key and the new one, the statement "the old key hands over to the new one
   from tree size N" (N: the latest checkpoint's size; services/audit/evidence/rotation.py);
2. stores it in `key_rotations` (committed before any file moves);
3. moves the old key file aside (`<key file>.retired-<key id>`) and the new one into its place;
4. writes the statement to the witness directory, and publishes it as a KeyRotated event on
   ledger.checkpoints (so the archive holds it too).

Each step is safe to repeat: a crash between 2 and 3 finds the stored statement at the next start
and only finishes the moves. Without a `.next` file nothing happens, and a key file that is not
the key of the latest checkpoint (or one it handed over to) is still refused
(services/audit/evidence/keys.py): a new key nobody who held the old one vouched for is a
forger's key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.checkpoints import KeyRotated
from schemas.codec import encode
from schemas.envelope import NAMESPACE, SYSTEM_ACTOR, originate
from services.audit.evidence.checkpoint import key_id, raw_public_key
from services.audit.evidence.keys import KeyRefused, load_key
from services.audit.evidence.rotation import Rotation, rotate, rotation_json, rotation_problem
from services.platform.kafka import headers_for

log = logging.getLogger(__name__)

COLUMNS = "old_public_key, new_public_key, after, old_signature, new_signature"


def next_key_path(path: Path) -> Path:
    """Where `exchange ledger rotate-key` leaves the key the ledger hands over to."""
    return path.with_name(f"{path.name}.next")


def retired_key_path(path: Path, old_key_id: bytes) -> Path:
    """Where the old key goes once handed over (kept: only its holder could sign as it)."""
    return path.with_name(f"{path.name}.retired-{old_key_id.hex()[:16]}")


def rotation_event_id(rotation: Rotation) -> uuid.UUID:
    """Stable id of the KeyRotated event, so that a re-publication is a duplicate."""
    return uuid.uuid5(
        NAMESPACE, f"key-rotation/{rotation.old_key_id.hex()}/{rotation.new_public_key.hex()}"
    )


def _of(r: asyncpg.Record) -> Rotation:
    return Rotation(
        r["old_public_key"],
        r["new_public_key"],
        r["after"],
        r["old_signature"],
        r["new_signature"],
    )


def handed_over(rotations: list[Rotation]) -> dict[bytes, bytes]:
    """old key id → new key id, for the statements that verify (both signatures)."""
    return {r.old_key_id: r.new_key_id for r in rotations if rotation_problem(r) is None}


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move_keys(path: Path, rotation: Rotation) -> None:
    """Old key aside, new key in its place; each move atomic, repeated safely after a crash."""
    nxt = next_key_path(path)
    if path.exists() and key_id(load_key(path).public_key()) == rotation.old_key_id:
        os.replace(path, retired_key_path(path, rotation.old_key_id))
    if nxt.exists():
        os.replace(nxt, path)
    _sync_dir(path.parent)


def _waiting(nxt: Path) -> Ed25519PrivateKey | None:
    return load_key(nxt) if nxt.exists() else None


def _current(path: Path, nxt: Path) -> Ed25519PrivateKey:
    if not path.exists():
        raise KeyRefused(
            f"a new key waits at {nxt}, but the current key {path} is missing: only the "
            "current key can hand over (restore it, then start again)"
        )
    return load_key(path)


async def hand_over(conn: asyncpg.Connection, path: Path) -> Rotation | None:
    """If a `.next` key waits beside the key file, hand over to it (see the module docstring);
    the statement, or None when there was nothing to do. Raises KeyRefused when the key file is
    not the key that signed the latest checkpoint (the statement would be worthless)."""
    nxt = next_key_path(path)
    new = await asyncio.to_thread(_waiting, nxt)
    if new is None:
        return None
    new_raw = raw_public_key(new.public_key())
    done = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM key_rotations WHERE new_public_key = $1", new_raw
    )
    if done is not None:  # stored before a crash: only the files are left to move
        rotation = _of(done)
        await asyncio.to_thread(_move_keys, path, rotation)
        return rotation
    latest = await conn.fetchrow(
        "SELECT tree_size, key_id FROM checkpoints ORDER BY tree_size DESC LIMIT 1"
    )
    old = await asyncio.to_thread(_current, path, nxt)
    old_id = key_id(old.public_key())
    if latest is not None and latest["key_id"] != old_id:
        raise KeyRefused(
            f"a new key waits at {nxt}, but {path} (key id {old_id.hex()[:16]}…) did not sign "
            f"the latest checkpoint (key id {bytes(latest['key_id']).hex()[:16]}…): restore the "
            "key that did, then start again"
        )
    if key_id(new.public_key()) == old_id:
        await asyncio.to_thread(nxt.unlink)
        return None
    rotation = rotate(old, new, latest["tree_size"] if latest is not None else 0)
    await conn.execute(
        f"INSERT INTO key_rotations ({COLUMNS}, old_key_id, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        rotation.old_public_key,
        rotation.new_public_key,
        rotation.after,
        rotation.old_signature,
        rotation.new_signature,
        rotation.old_key_id,
        rotation_event_id(rotation),
    )
    await asyncio.to_thread(_move_keys, path, rotation)
    log.warning(
        "signing key handed over: publish the new public key (exchange audit key)",
        extra={
            "old_key_id": rotation.old_key_id.hex(),
            "new_key_id": rotation.new_key_id.hex(),
            "after": rotation.after,
        },
    )
    return rotation


def rotation_file_name(rotation: Rotation) -> str:
    """`rotation-000000001000-<old key id, 16 hex>.json`: sorts by tree size."""
    return f"rotation-{rotation.after:012d}-{rotation.old_key_id.hex()[:16]}.json"


def write_rotation_files(directory: Path, rotations: list[Rotation]) -> int:
    """Write each statement's witness file unless it exists (never overwritten); how many."""
    directory.mkdir(parents=True, exist_ok=True)
    written = 0
    for rotation in rotations:
        path = directory / rotation_file_name(rotation)
        tmp = directory / f".{path.name}.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(rotation_json(rotation), indent=2) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
                written += 1
        finally:
            tmp.unlink(missing_ok=True)
    if written:
        _sync_dir(directory)
    return written


async def publish_rotations(
    conn: asyncpg.Connection, producer: AIOKafkaProducer, topic: str, owner: str
) -> int:
    """Publish every stored hand-over not yet published as a KeyRotated event; how many."""
    rows = await conn.fetch(
        f"SELECT {COLUMNS}, event_id, created_at FROM key_rotations"
        " WHERE published_at IS NULL ORDER BY after"
    )
    for r in rows:
        rotation = _of(r)
        payload = KeyRotated(**rotation_json(rotation))
        env = originate(
            payload,
            event_id=r["event_id"],
            at=r["created_at"],
            actor=SYSTEM_ACTOR,
            stream_id=f"key-rotations:{rotation.old_key_id.hex()[:16]}",
            stream_seq=1,
        )
        await producer.send_and_wait(
            topic,
            encode(env),
            key=b"ledger",
            partition=0,
            headers=headers_for(env.event_id, env.event_type, producer=owner),
        )
        await conn.execute(
            "UPDATE key_rotations SET published_at = $2 WHERE event_id = $1",
            r["event_id"],
            datetime.now(UTC),
        )
    return len(rows)
