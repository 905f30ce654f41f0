"""Key hand-overs (services/audit/evidence/rotation.py): trust follows a statement both keys
signed, each key only for its own span of history; a statement the old key did not sign, or a
fork, extends no trust."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.evidence.checkpoint import TreeHead, key_id, sign
from services.audit.evidence.rotation import (
    KeyRing,
    rotate,
    rotation_from_json,
    rotation_json,
    rotation_problem,
)

pytestmark = pytest.mark.unit


def head(size: int) -> TreeHead:
    return TreeHead(size, hashlib.sha256(b"%d" % size).digest(), bytes(32))


def test_the_new_key_signs_from_the_hand_over_and_the_old_key_up_to_it() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    r = rotate(old, new, 100)
    assert rotation_problem(r) is None
    ring = KeyRing(old.public_key(), [r])
    assert ring.problems == [] and ring.handovers == [r]
    assert ring.problem(sign(head(100), old)) is None
    assert ring.problem(sign(head(100), new)) is None
    assert ring.problem(sign(head(150), new)) is None
    assert "outside its span" in (ring.problem(sign(head(150), old)) or "")
    assert "outside its span" in (ring.problem(sign(head(50), new)) or "")


def test_a_verifier_who_pinned_the_new_key_walks_back_to_the_old_one() -> None:
    a, b, c = (Ed25519PrivateKey.generate() for _ in range(3))
    ring = KeyRing(c.public_key(), [rotate(b, c, 200), rotate(a, b, 100)])
    assert ring.problems == []
    assert ring.problem(sign(head(10), a)) is None
    assert ring.problem(sign(head(150), b)) is None
    assert ring.problem(sign(head(250), c)) is None
    assert ring.problem(sign(head(250), a)) is not None
    assert [r.after for r in ring.handovers] == [100, 200]


def test_a_statement_the_old_key_did_not_sign_is_a_problem_and_trusts_nothing() -> None:
    old, new, forger = (Ed25519PrivateKey.generate() for _ in range(3))
    genuine = rotate(forger, new, 100)
    forged = dataclasses.replace(genuine, old_public_key=rotate(old, new, 100).old_public_key)
    assert rotation_problem(forged) == "not signed by the old key it names"
    ring = KeyRing(old.public_key(), [forged])
    assert ring.problems and "not signed by the old key" in ring.problems[0]
    assert "unknown key" in (ring.problem(sign(head(150), new)) or "")


def test_a_fork_trusts_neither_successor() -> None:
    old, b, c = (Ed25519PrivateKey.generate() for _ in range(3))
    ring = KeyRing(old.public_key(), [rotate(old, b, 100), rotate(old, c, 100)])
    assert any("fork" in p for p in ring.problems)
    assert ring.problem(sign(head(150), b)) is not None
    assert ring.problem(sign(head(150), c)) is not None
    assert ring.problem(sign(head(50), old)) is None  # the old key's own history still checks


def test_an_unrelated_hand_over_between_other_keys_adds_no_trust() -> None:
    pinned, x, y = (Ed25519PrivateKey.generate() for _ in range(3))
    ring = KeyRing(pinned.public_key(), [rotate(x, y, 10)])
    assert ring.problems == [] and ring.handovers == []
    assert set(ring.keys) == {key_id(pinned.public_key())}


def test_a_statement_round_trips_through_json() -> None:
    r = rotate(Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate(), 7)
    assert rotation_from_json(rotation_json(r)) == r
    assert rotation_from_json({"payload": rotation_json(r)}) == r
    changed = dataclasses.replace(r, after=8)
    assert rotation_problem(changed) == "not signed by the old key it names"
