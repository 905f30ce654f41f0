"""Key rotation: the old signing key hands over to a new one in a statement both keys sign.

A signing key may have to change (a planned rotation, a host moved, a key suspected exposed and
retired in time). A new key on its own is indistinguishable from a forger's key, so a change
counts only when the *old* key signed a statement naming the new key and the tree size from
which the new key signs. The new key signs the same statement too: it shows whoever holds the
new key accepted the hand-over, and lets a verifier who pinned the *new* key walk back to the
old one (and so check the history signed before the hand-over).

The statement is a small text note, in the style of the checkpoint note (services/audit/
checkpoint.py), so a person can read what was signed:

    community-exchange/ledger
    key-rotation
    from <old raw public key, hex>
    to <new raw public key, hex>
    after <tree size>

Checkpoints with `tree_size <= after` are the old key's; `tree_size >= after` the new key's (the
head at exactly `after` may be signed by either). A key hands over at most once: two statements
from one key naming different successors are a fork, and a verifier refuses both.

Pure: no I/O; statements are read and stored by the ledger and the audit commands.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.audit.evidence.checkpoint import (
    ORIGIN,
    Checkpoint,
    key_id,
    note,
    raw_public_key,
)


@dataclass(frozen=True)
class Rotation:
    """`old_public_key` hands over to `new_public_key` for checkpoints from tree size `after`."""

    old_public_key: bytes
    """The old key's 32 raw bytes (its id, SHA-256 of them, is what its checkpoints carry)."""
    new_public_key: bytes
    after: int
    old_signature: bytes
    new_signature: bytes

    @property
    def old_key_id(self) -> bytes:
        """The id the old key's checkpoints carry."""
        return hashlib.sha256(self.old_public_key).digest()

    @property
    def new_key_id(self) -> bytes:
        """The id the new key's checkpoints carry."""
        return hashlib.sha256(self.new_public_key).digest()


def rotation_note(old_public_key: bytes, new_public_key: bytes, after: int) -> bytes:
    """The exact bytes both keys sign (UTF-8 text, each line ending in a newline)."""
    return (
        f"{ORIGIN}\nkey-rotation\nfrom {old_public_key.hex()}\nto {new_public_key.hex()}\n"
        f"after {after}\n"
    ).encode()


def rotate(old: Ed25519PrivateKey, new: Ed25519PrivateKey, after: int) -> Rotation:
    """The statement in which `old` hands over to `new` from tree size `after`."""
    old_raw = raw_public_key(old.public_key())
    new_raw = raw_public_key(new.public_key())
    text = rotation_note(old_raw, new_raw, after)
    return Rotation(old_raw, new_raw, after, old.sign(text), new.sign(text))


def rotation_problem(rotation: Rotation) -> str | None:
    """Why `rotation` is not a valid hand-over signed by both keys it names, or None."""
    text = rotation_note(rotation.old_public_key, rotation.new_public_key, rotation.after)
    for name, raw, signature in (
        ("old", rotation.old_public_key, rotation.old_signature),
        ("new", rotation.new_public_key, rotation.new_signature),
    ):
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, text)
        except ValueError:
            return f"names an {name} key that is not an Ed25519 public key"
        except InvalidSignature:
            return f"not signed by the {name} key it names"
    return None


def rotation_json(rotation: Rotation) -> dict[str, object]:
    """A statement as JSON (hex fields, the shape of a KeyRotated event's payload)."""
    return {
        "origin": ORIGIN,
        "old_public_key": rotation.old_public_key.hex(),
        "new_public_key": rotation.new_public_key.hex(),
        "after": rotation.after,
        "old_signature": rotation.old_signature.hex(),
        "new_signature": rotation.new_signature.hex(),
    }


def rotation_from_json(doc: dict[str, object]) -> Rotation:
    """The inverse of `rotation_json` (also reads a KeyRotated event, payload or envelope)."""
    body = doc.get("payload", doc)
    if not isinstance(body, dict):
        raise ValueError("not a key rotation statement")
    return Rotation(
        bytes.fromhex(str(body["old_public_key"])),
        bytes.fromhex(str(body["new_public_key"])),
        int(str(body["after"])),
        bytes.fromhex(str(body["old_signature"])),
        bytes.fromhex(str(body["new_signature"])),
    )


@dataclass(frozen=True)
class TrustedKey:
    """A key a verifier trusts, for checkpoints of tree sizes in [`lowest`, `highest`]."""

    key: Ed25519PublicKey
    lowest: int
    highest: int | None
    """None: no hand-over from this key is known (it signs from `lowest` on)."""


class KeyRing:
    """The keys a verifier trusts: the pinned one, and every key reached from it through valid
    hand-overs, forwards (to the key it handed over to) and backwards (to the key that handed
    over to it). Each key only for its own span of tree sizes. Statements that do not verify,
    or forks (one key handing over twice), are in `problems` and extend no trust."""

    def __init__(self, pinned: Ed25519PublicKey, rotations: list[Rotation]) -> None:
        self.problems: list[str] = []
        self.keys: dict[bytes, TrustedKey] = {key_id(pinned): TrustedKey(pinned, 0, None)}
        valid: dict[tuple[bytes, bytes, int], Rotation] = {}
        for r in rotations:
            why = rotation_problem(r)
            if why is None:
                valid[(r.old_public_key, r.new_public_key, r.after)] = r
            else:
                self.problems.append(
                    f"key rotation from key id {r.old_key_id.hex()[:16]}… at tree size "
                    f"{r.after}: {why}"
                )
        by_old: dict[bytes, list[Rotation]] = {}
        by_new: dict[bytes, list[Rotation]] = {}
        for r in valid.values():
            by_old.setdefault(r.old_key_id, []).append(r)
            by_new.setdefault(r.new_key_id, []).append(r)
        for kind, index in (("handed over", by_old), ("was handed", by_new)):
            for kid, rs in index.items():
                if len(rs) > 1:
                    self.problems.append(
                        f"key id {kid.hex()[:16]}… {kind} {len(rs)} times (a fork): none of "
                        "those hand-overs is trusted"
                    )
        forwards = {k: rs[0] for k, rs in by_old.items() if len(rs) == 1}
        backwards = {k: rs[0] for k, rs in by_new.items() if len(rs) == 1}
        self.handovers: list[Rotation] = []
        start = key_id(pinned)
        current = start
        while current in forwards and forwards[current].new_key_id not in self.keys:
            r = forwards[current]
            held = self.keys[current]
            if r.after < held.lowest:
                self.problems.append(f"hand-over at tree size {r.after} goes back in time")
                break
            self.keys[current] = TrustedKey(held.key, held.lowest, r.after)
            new = Ed25519PublicKey.from_public_bytes(r.new_public_key)
            self.keys[r.new_key_id] = TrustedKey(new, r.after, None)
            self.handovers.append(r)
            current = r.new_key_id
        current = start
        while current in backwards and backwards[current].old_key_id not in self.keys:
            r = backwards[current]
            held = self.keys[current]
            if held.highest is not None and r.after > held.highest:
                self.problems.append(f"hand-over at tree size {r.after} goes back in time")
                break
            self.keys[current] = TrustedKey(held.key, r.after, held.highest)
            old = Ed25519PublicKey.from_public_bytes(r.old_public_key)
            self.keys[r.old_key_id] = TrustedKey(old, 0, r.after)
            self.handovers.insert(0, r)
            current = r.old_key_id

    def problem(self, checkpoint: Checkpoint) -> str | None:
        """Why `checkpoint` is not validly signed by a trusted key within its span, or None."""
        size = checkpoint.head.tree_size
        trusted = self.keys.get(checkpoint.key_id)
        if trusted is None:
            return f"signed by an unknown key (key id {checkpoint.key_id.hex()[:16]}…)"
        if size < trusted.lowest or (trusted.highest is not None and size > trusted.highest):
            span = f"{trusted.lowest}–{trusted.highest if trusted.highest is not None else '…'}"
            return (
                f"signed by key id {checkpoint.key_id.hex()[:16]}… outside its span (tree sizes "
                f"{span}): a retired key cannot sign new history, nor a new key old history"
            )
        try:
            trusted.key.verify(checkpoint.signature, note(checkpoint.head))
        except InvalidSignature:
            return (
                "not validly signed: its signature does not verify with the exchange's public key"
            )
        return None


def public_key_hex(key: Ed25519PublicKey) -> str:
    """The 64 hex digits of a raw public key."""
    return raw_public_key(key).hex()


__all__ = [
    "KeyRing",
    "Rotation",
    "TrustedKey",
    "public_key_hex",
    "rotate",
    "rotation_from_json",
    "rotation_json",
    "rotation_note",
    "rotation_problem",
]
