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

from services.audit.evidence.checkpoint import Checkpoint, TreeHead
from services.audit.evidence.merkle import verify_consistency
from services.audit.evidence.rotation import KeyRing, Rotation, rotation_from_json, rotation_json


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


def proof_document(
    old: Checkpoint,
    new: Checkpoint,
    proof: Sequence[bytes],
    rotations: Sequence[Rotation] = (),
) -> dict[str, Any]:
    """What `exchange audit prove` prints; `rotations`: the key hand-overs, so that a holder
    of the old key can check a checkpoint signed by its successor."""
    return {
        "old": checkpoint_json(old),
        "new": checkpoint_json(new),
        "consistency_proof": [p.hex() for p in proof],
        "key_rotations": [rotation_json(r) for r in rotations],
    }


def proof_problem(doc: dict[str, Any], trusted: Ed25519PublicKey) -> str | None:
    """Why the document does not prove that `new` extends `old` under `trusted`, or None.
    Its `key_rotations` (hand-over statements, services/audit/evidence/rotation.py) let a checkpoint
    signed by a key `trusted` handed over to (or received from) count."""
    try:
        old, new = checkpoint_from_json(doc["old"]), checkpoint_from_json(doc["new"])
        proof = [bytes.fromhex(p) for p in doc["consistency_proof"]]
        rotations = [rotation_from_json(r) for r in doc.get("key_rotations", [])]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"not a proof document ({exc!r})"
    ring = KeyRing(trusted, rotations)
    if ring.problems:
        return f"its key rotations do not hold: {ring.problems[0]}"
    for name, cp in (("old", old), ("new", new)):
        why = ring.problem(cp)
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
