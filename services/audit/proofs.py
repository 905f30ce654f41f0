"""Consistency proofs between two signed checkpoints, as a JSON document anyone can check.

`exchange audit prove` writes the document; `exchange audit verify-proof` (or `proof_problem`
here, with any Ed25519 and SHA-256 implementation) checks it with only the exchange's public key:
both checkpoints are signed by that key, and the later tree extends the earlier one (RFC 6962
consistency proof). A holder of an older checkpoint compares it with `old` in the document.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.checkpoint import Checkpoint, TreeHead, problem
from services.audit.merkle import verify_consistency


def checkpoint_json(cp: Checkpoint) -> dict[str, Any]:
    """A checkpoint as JSON: the same field names and hex encoding as CheckpointRecorded."""
    return {
        "tree_size": cp.head.tree_size,
        "root_hash": cp.head.root_hash.hex(),
        "chain_hash": cp.head.chain_hash.hex(),
        "key_id": cp.key_id.hex(),
        "signature": cp.signature.hex(),
    }


def checkpoint_from_json(doc: dict[str, Any]) -> Checkpoint:
    """The inverse of `checkpoint_json` (also reads a CheckpointRecorded payload)."""
    return Checkpoint(
        TreeHead(
            int(doc["tree_size"]),
            bytes.fromhex(doc["root_hash"]),
            bytes.fromhex(doc["chain_hash"]),
        ),
        bytes.fromhex(doc["key_id"]),
        bytes.fromhex(doc["signature"]),
    )


def proof_document(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> dict[str, Any]:
    """What `exchange audit prove` prints."""
    return {
        "old": checkpoint_json(old),
        "new": checkpoint_json(new),
        "consistency_proof": [p.hex() for p in proof],
    }


def proof_problem(doc: dict[str, Any], trusted: Ed25519PublicKey) -> str | None:
    """Why the document does not prove that `new` extends `old` under `trusted`, or None."""
    try:
        old, new = checkpoint_from_json(doc["old"]), checkpoint_from_json(doc["new"])
        proof = [bytes.fromhex(p) for p in doc["consistency_proof"]]
    except (KeyError, TypeError, ValueError) as exc:
        return f"not a proof document ({exc!r})"
    for name, cp in (("old", old), ("new", new)):
        why = problem(cp, trusted)
        if why is not None:
            return f"the {name} checkpoint is {why}"
    if not verify_consistency(
        old.head.tree_size, new.head.tree_size, old.head.root_hash, new.head.root_hash, proof
    ):
        return (
            f"the tree of size {new.head.tree_size} does not extend the one of size "
            f"{old.head.tree_size}: the log was rewritten between them"
        )
    return None
