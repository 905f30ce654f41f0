"""Test vectors for donor receipts, generated from the Python side (services/audit):
`python -m tests.vectors.make_receipts > tests/vectors/receipts.json`.

The Python unit test (tests/unit/test_receipts.py) checks the file is what this module makes
and that the Python verifiers agree with every `valid`; the browser test loads the same file
into the receipt page's verifier (static/receipt.js) and asserts it agrees too. RFC 6962 edge
cases are covered: a tree of one leaf, powers of two, the last leaf, old size = new size; and
key hand-overs: followed once and twice, forged, forked, and keys signing outside their span."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.evidence.chain import ArchivedRow, content_bytes, content_hash, micros
from services.audit.evidence.checkpoint import TreeHead, note, raw_public_key, sign
from services.audit.evidence.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from services.audit.evidence.proofs import checkpoint_json
from services.audit.evidence.receipt import Pinned, pinned_fragment, receipt_checks, receipt_id
from services.audit.evidence.rotation import (
    Rotation,
    rotate,
    rotation_json,
    rotation_note,
    rotation_problem,
)

SIZES = (1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 31, 32, 33)
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
NEXT_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
THIRD_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(96, 128)))
EARLIER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(128, 160)))
SECRET = b"test receipt secret"


def _data(i: int) -> bytes:
    return hashlib.sha256(f"leaf {i}".encode()).digest()


def _flip(b: bytes) -> bytes:
    return bytes([b[0] ^ 1]) + b[1:]


def _powers_below(n: int) -> list[int]:
    return [1 << k for k in range(n.bit_length()) if 1 << k <= n]


def inclusion_cases() -> list[dict[str, Any]]:
    out = []
    for n in SIZES:
        data = [_data(i) for i in range(n)]
        leaves = [leaf_hash(d) for d in data]
        head = root(leaves)
        for i in sorted({0, n - 1, n // 2, *[p for p in _powers_below(n) if p < n]}):
            proof = inclusion_proof(leaves, i)
            variants = [("as made", i, proof, head)]
            if proof:
                variants += [
                    ("an element altered", i, [_flip(proof[0]), *proof[1:]], head),
                    ("the last element dropped", i, proof[:-1], head),
                    ("an element added", i, [*proof, proof[0]], head),
                ]
            if n > 1:
                variants.append(("another index", (i + 1) % n, proof, head))
            variants.append(("another root", i, proof, _flip(head)))
            for what, index, path, expected in variants:
                out.append(
                    {
                        "what": what,
                        "size": n,
                        "index": index,
                        "leaf_data": data[i].hex(),
                        "proof": [p.hex() for p in path],
                        "root": expected.hex(),
                        "valid": verify_inclusion(index, n, leaf_hash(data[i]), path, expected),
                    }
                )
    return out


def consistency_cases() -> list[dict[str, Any]]:
    out = []
    for n in SIZES:
        leaves = [leaf_hash(_data(i)) for i in range(n)]
        new = root(leaves)
        for m in sorted({1, n, n - 1 or 1, n // 2 + 1, *_powers_below(n)}):
            old = root(leaves[:m])
            proof = consistency_proof(leaves, m)
            variants = [("as made", m, old, new, proof)]
            if proof:
                variants += [
                    ("an element altered", m, old, new, [_flip(proof[0]), *proof[1:]]),
                    ("the last element dropped", m, old, new, proof[:-1]),
                ]
            variants.append(("a rewritten old tree", m, _flip(old), new, proof))
            variants.append(("a rewritten new tree", m, old, _flip(new), proof))
            for what, size, o, nw, path in variants:
                out.append(
                    {
                        "what": what,
                        "old_size": size,
                        "new_size": n,
                        "old_root": o.hex(),
                        "new_root": nw.hex(),
                        "proof": [p.hex() for p in path],
                        "valid": verify_consistency(size, n, o, nw, path),
                    }
                )
    return out


def signature_cases() -> list[dict[str, Any]]:
    head = TreeHead(5, root([leaf_hash(_data(i)) for i in range(5)]), hashlib.sha256(b"c").digest())
    cp = sign(head, KEY)
    public = raw_public_key(KEY.public_key())
    base = {
        "tree_size": head.tree_size,
        "root_hash": head.root_hash.hex(),
        "chain_hash": head.chain_hash.hex(),
        "note": base64.b64encode(note(head)).decode(),
    }
    other = raw_public_key(OTHER_KEY.public_key())
    return [
        {**base, "what": "as signed", "public_key": public.hex(),
         "signature": cp.signature.hex(), "valid": True},
        {**base, "what": "signature altered", "public_key": public.hex(),
         "signature": _flip(cp.signature).hex(), "valid": False},
        {**base, "what": "another key", "public_key": other.hex(),
         "signature": cp.signature.hex(), "valid": False},
    ]  # fmt: skip


def rotation_cases() -> list[dict[str, Any]]:
    """Key hand-over statements (services/audit/evidence/rotation.py): the exact note both keys
    sign, and whether each statement verifies under both keys it names."""
    made = rotate(KEY, NEXT_KEY, 5)
    variants = [
        ("as signed", made),
        ("old signature altered", replace(made, old_signature=_flip(made.old_signature))),
        ("new signature altered", replace(made, new_signature=_flip(made.new_signature))),
        ("another tree size", replace(made, after=6)),
        ("old key signed as the new one", replace(made, new_signature=made.old_signature)),
    ]
    return [
        {
            "what": what,
            **rotation_json(r),
            "note": base64.b64encode(
                rotation_note(r.old_public_key, r.new_public_key, r.after)
            ).decode(),
            "valid": rotation_problem(r) is None,
        }
        for what, r in variants
    ]


def _rows() -> list[ArchivedRow]:
    donation = uuid.UUID("55555555-5555-4555-8555-555555555555")
    fund = uuid.UUID("22222222-2222-4222-8222-222222222222")
    value = json.dumps(
        {
            "event_id": "f0a475e9-f071-5054-bb51-18441973ff1d",
            "event_type": "DonationReceived",
            "payload": {
                "fund_id": str(fund),
                "donation_id": str(donation),
                "donation": {"donor": "锁金村居民", "amount": {"amount_minor": 800000,
                                                              "currency": "CNY"}},
            },
        },
        ensure_ascii=False,
    ).encode()  # fmt: skip
    at = datetime(2026, 12, 5, 2, 0, 1, 123456, tzinfo=UTC)
    return [
        ArchivedRow(
            uuid.UUID("f0a475e9-f071-5054-bb51-18441973ff1d"), "funds.events", 3, 2**40 + 7,
            fund.bytes, value, [["producer", "intake-donations"], ["名", "值"]],
            "DonationReceived", f"fund:{fund}", 12, at,
        ),
        ArchivedRow(
            uuid.UUID("00000000-0000-4000-8000-000000000001"), "clock.ticks", 0, 0, None, b"{}",
            [], "ClockTicked",
        ),
    ]  # fmt: skip


def canonical_cases() -> list[dict[str, Any]]:
    return [
        {
            "bytes": content_bytes(r).hex(),
            "content_hash": content_hash(r).hex(),
            "event_id": str(r.event_id),
            "topic": r.topic,
            "partition": r.partition,
            "offset": r.offset,
            "key": r.key.hex() if r.key is not None else None,
            "value": r.value.decode(),
            "headers": [list(h) for h in r.headers],
            "event_type": r.event_type,
            "stream_id": r.stream_id,
            "stream_seq": r.stream_seq,
            "recorded_at_us": micros(r.recorded_at) if r.recorded_at else None,
        }
        for r in _rows()
    ]


def receipt_cases() -> list[dict[str, Any]]:
    """A receipt answer over a log of 9 events whose event 3 is the donation, issued at 5, and
    the answer tampered with in each way the page must catch."""
    donation = _rows()[0]
    data = [_data(i) for i in range(9)]
    data[2] = content_hash(donation)
    leaves = [leaf_hash(d) for d in data]
    chain = hashlib.sha256(b"chain").digest()
    issued = sign(TreeHead(5, root(leaves[:5]), chain), KEY)
    newest = sign(TreeHead(9, root(leaves), chain), KEY)
    rid = receipt_id(SECRET, uuid.UUID("55555555-5555-4555-8555-555555555555"))
    pinned = Pinned(raw_public_key(KEY.public_key()), issued)
    answer: dict[str, Any] = {
        "receipt_id": rid,
        "donation": {
            "donation_id": "55555555-5555-4555-8555-555555555555",
            "fund_id": "22222222-2222-4222-8222-222222222222",
            "amount": {"amount_minor": 800000, "currency": "CNY"},
        },
        "event": {
            "canonical_bytes": base64.b64encode(content_bytes(donation)).decode(),
            "leaf_index": 2,
        },
        "checkpoint": checkpoint_json(newest),
        "inclusion_proof": [p.hex() for p in inclusion_proof(leaves, 2)],
        "consistency": {
            "from_size": 5,
            "to_size": 9,
            "proof": [p.hex() for p in consistency_proof(leaves, 5)],
        },
    }
    rewritten = [*leaves[:4], leaf_hash(b"rewritten"), *leaves[5:]]
    forged = sign(TreeHead(9, root(rewritten), chain), KEY)
    other = sign(TreeHead(9, root(leaves), chain), OTHER_KEY)
    tampered_bytes = content_bytes(donation).replace(b"800000", b"900000")

    def variant(what: str, **change: Any) -> dict[str, Any]:
        doc = json.loads(json.dumps(answer))
        for path, value in change.items():
            *parents, last = path.split("__")
            node = doc
            for p in parents:
                node = node[p]
            node[last] = value
        checks = receipt_checks(doc, rid, pinned)
        return {
            "what": what,
            "answer": doc,
            "checks": {c.name: c.ok for c in checks},
            "reasons": {c.name: c.reason for c in checks if not c.ok},
            "key_changes": [r.after for c in checks for r in c.handovers],
        }

    def handed(*rotations: Rotation) -> list[dict[str, object]]:
        return [rotation_json(r) for r in rotations]

    def signed_by(key: Ed25519PrivateKey) -> dict[str, Any]:
        return checkpoint_json(sign(newest.head, key))

    one, two = rotate(KEY, NEXT_KEY, 5), rotate(NEXT_KEY, THIRD_KEY, 7)
    by_new = rotate(NEXT_KEY, NEXT_KEY, 5)  # whoever holds only the new key signs as itself
    usurped = Rotation(
        one.old_public_key, one.new_public_key, 5, by_new.old_signature, by_new.new_signature
    )

    path = answer["inclusion_proof"]
    return [
        {"receipt_id": rid, "fragment": pinned_fragment(pinned)},
        variant("as issued"),
        variant("event bytes changed",
                event__canonical_bytes=base64.b64encode(tampered_bytes).decode()),
        variant("amount shown changed", donation__amount={"amount_minor": 900000,
                                                          "currency": "CNY"}),
        variant("a proof element altered", inclusion_proof=[_flip(bytes.fromhex(path[0])).hex(),
                                                            *path[1:]]),
        variant("signature altered", checkpoint__signature=_flip(newest.signature).hex()),
        variant("signed by another key", checkpoint=checkpoint_json(other)),
        variant("a rewritten log", checkpoint=checkpoint_json(forged),
                inclusion_proof=[p.hex() for p in inclusion_proof(rewritten, 2)],
                consistency={"from_size": 5, "to_size": 9,
                             "proof": [p.hex() for p in consistency_proof(rewritten, 5)]}),
        # key hand-overs (services/audit/evidence/rotation.py): followed from the pinned key,
        # each signed by both keys, each key within its span of tree sizes
        variant("handed over once", checkpoint=signed_by(NEXT_KEY), key_rotations=handed(one)),
        variant("handed over twice", checkpoint=signed_by(THIRD_KEY),
                key_rotations=handed(two, one)),
        variant("a hand-over not signed by the old key", checkpoint=signed_by(NEXT_KEY),
                key_rotations=handed(usurped)),
        variant("the second hand-over not signed by the old key", checkpoint=signed_by(THIRD_KEY),
                key_rotations=handed(one, Rotation(two.old_public_key, two.new_public_key, 7,
                                                   _flip(two.old_signature),
                                                   two.new_signature))),
        variant("a new key signs before its hand-over", checkpoint=signed_by(NEXT_KEY),
                key_rotations=handed(rotate(KEY, NEXT_KEY, 12))),
        variant("a retired key signs after its hand-over", key_rotations=handed(rotate(
            KEY, NEXT_KEY, 7))),
        variant("the pinned key handed over twice (a fork)", checkpoint=signed_by(NEXT_KEY),
                key_rotations=handed(one, rotate(KEY, THIRD_KEY, 5))),
        variant("issued before the pinned key took over",
                key_rotations=handed(rotate(EARLIER_KEY, KEY, 7))),
        variant("a valid hand-over, the checkpoint's signature altered",
                checkpoint={**signed_by(NEXT_KEY),
                            "signature": _flip(sign(newest.head, NEXT_KEY).signature).hex()},
                key_rotations=handed(one)),
    ]  # fmt: skip


def vectors() -> dict[str, Any]:
    """Everything in tests/vectors/receipts.json."""
    return {
        "about": __doc__.splitlines()[0] if __doc__ else "",
        "inclusion": inclusion_cases(),
        "consistency": consistency_cases(),
        "signatures": signature_cases(),
        "rotations": rotation_cases(),
        "canonical": canonical_cases(),
        "receipts": receipt_cases(),
    }


def dumps() -> str:
    return json.dumps(vectors(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(dumps(), end="")
