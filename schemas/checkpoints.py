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
