"""Signed checkpoints: a tree head over the archive's first n events, signed with Ed25519.

The signed bytes are a small text note in the shape of a transparency-log checkpoint (C2SP
tlog-checkpoint): an origin line, the tree size in decimal, the RFC 6962 root hash in base64,
then one extension line carrying the hash chain's head at that size. Text, so a person can read
what was signed; fixed, so any Ed25519 library can check it with only the public key.

The key id is SHA-256 of the raw 32-byte public key: a checkpoint names the key that signed it,
and a verifier refuses any key it was not given. Pure: no I/O (keys are passed in).
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ORIGIN = "community-exchange/ledger"
"""The first line of every signed note: which log this is a head of."""


@dataclass(frozen=True)
class TreeHead:
    """The state of the archive after its first `tree_size` events (in archive_seq order)."""

    tree_size: int
    root_hash: bytes
    """RFC 6962 head over leaf_hash(content_hash) of each row."""
    chain_hash: bytes
    """The chain hash of row number `tree_size` (chain.GENESIS for an empty archive)."""


@dataclass(frozen=True)
class Checkpoint:
    """A tree head, the id of the key that signed it, and the Ed25519 signature of its note."""

    head: TreeHead
    key_id: bytes
    signature: bytes


def note(head: TreeHead) -> bytes:
    """The exact bytes that are signed (UTF-8 text, each line ending in a newline)."""
    root = base64.b64encode(head.root_hash).decode("ascii")
    return f"{ORIGIN}\n{head.tree_size}\n{root}\nchain {head.chain_hash.hex()}\n".encode()


def raw_public_key(key: Ed25519PublicKey) -> bytes:
    """The 32 bytes of an Ed25519 public key (RFC 8032 encoding)."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> bytes:
    """SHA-256 of the raw public key: how a checkpoint names its signer."""
    return hashlib.sha256(raw_public_key(key)).digest()


def public_key_from_hex(text: str) -> Ed25519PublicKey:
    """A public key from the 64 hex digits `exchange audit key` prints."""
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(text.strip()))


def sign(head: TreeHead, key: Ed25519PrivateKey) -> Checkpoint:
    """Sign a tree head with the exchange's key."""
    return Checkpoint(head, key_id(key.public_key()), key.sign(note(head)))


def problem(checkpoint: Checkpoint, trusted: Ed25519PublicKey) -> str | None:
    """Why `checkpoint` is not a valid signature by `trusted` over its head, or None if it is."""
    if checkpoint.key_id != key_id(trusted):
        return f"signed by an unknown key (key id {checkpoint.key_id.hex()[:16]}…)"
    try:
        trusted.verify(checkpoint.signature, note(checkpoint.head))
    except InvalidSignature:
        return "not validly signed: its signature does not verify with the exchange's public key"
    return None
