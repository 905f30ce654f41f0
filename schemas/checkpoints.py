"""Checkpoints of the archive, published so that holders outside the exchange keep them."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field

from schemas.message import Message

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A SHA-256 digest as 64 lowercase hex digits."""


class CheckpointRecorded(Message):
    """The ledger signed the head of its archive: the first `tree_size` archived events.

    `root_hash` is their RFC 6962 Merkle tree head, `chain_hash` the hash chain's value at the
    last of them; `signature` is Ed25519 over the note described in docs/audit.md, by the key
    whose SHA-256 is `key_id`. Anyone holding this event and the exchange's public key can later
    ask for a consistency proof and check that the archive they are shown extends it."""

    TYPE: ClassVar[str] = "CheckpointRecorded"
    origin: Annotated[str, Field(min_length=1, max_length=120)]
    tree_size: Annotated[int, Field(ge=0)]
    root_hash: Sha256Hex
    chain_hash: Sha256Hex
    key_id: Sha256Hex
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]


PublicKeyHex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
"""A raw Ed25519 public key as 64 lowercase hex digits."""

SignatureHex = Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]
"""An Ed25519 signature as 128 lowercase hex digits."""


class KeyRotated(Message):
    """The ledger's signing key handed over to a new key, from tree size `after` on.

    Both keys signed the statement described in docs/audit.md ("Key rotation"): the old key
    (`old_signature`: whoever held it made the change) and the new one (`new_signature`: it
    accepts). A verifier who pinned either key follows the statement to trust the other, the
    old key for checkpoints up to `after`, the new key from `after` on."""

    TYPE: ClassVar[str] = "KeyRotated"
    origin: Annotated[str, Field(min_length=1, max_length=120)]
    old_public_key: PublicKeyHex
    new_public_key: PublicKeyHex
    after: Annotated[int, Field(ge=0)]
    old_signature: SignatureHex
    new_signature: SignatureHex
