"""Donor receipts: what a receipt link carries, and the checks anyone can run on a receipt.

A receipt is a capability and a pinned anchor, both in its link:

    https://<exchange>/receipts/<receipt id>#k=<public key>&n=<size>&r=<root>&c=<chain>&s=<sig>

- The **receipt id** is the donation id (16 bytes) followed by the first 16 bytes of
  HMAC-SHA256(secret, tag || donation id), base64url: whoever holds the link may read the
  receipt; knowing a donation id (foundations and auditors see them) is not enough.
- The **fragment** pins the exchange's public key and the signed checkpoint the receipt was
  issued under (tree size, root, chain hash, signature). A browser never sends a fragment to a
  server, so the server cannot change what the receipt holder pinned.

`receipt_checks` takes the exchange's answer (`GET /v1/receipts/{id}`) and the pinned anchor and
checks, trusting nothing the server says: the archived event is the receipt's donation (parsed
from its canonical bytes); its content hash is a leaf of the newest checkpoint's tree (RFC 6962
inclusion proof); the issued checkpoint is signed by the pinned key, and the newest by that key
or by one it handed over to (services/audit/evidence/rotation.py, each key within its span);
and the newest tree extends the issued one (RFC 6962 consistency proof). The browser does the
same in services/web/static/receipt.js; tests/vectors/receipts.json keeps the two in step.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.audit.evidence.chain import CONTENT_TAG, ArchivedRow
from services.audit.evidence.checkpoint import Checkpoint, TreeHead, note
from services.audit.evidence.merkle import leaf_hash, root_from_inclusion, verify_consistency
from services.audit.evidence.proofs import checkpoint_from_json
from services.audit.evidence.rotation import (
    KeyRing,
    Rotation,
    rotation_from_json,
    rotation_problem,
)

RECEIPT_TAG = b"community-exchange/receipt/v1\x00"
"""Domain separation for the receipt id's HMAC."""
MAC_BYTES = 16
"""128 bits of HMAC: guessing a receipt id is hopeless."""


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def receipt_id(secret: bytes, donation_id: uuid.UUID) -> str:
    """The receipt id of a donation: unguessable without the exchange's receipt secret."""
    mac = hmac.new(secret, RECEIPT_TAG + donation_id.bytes, hashlib.sha256).digest()
    return _b64url(donation_id.bytes + mac[:MAC_BYTES])


def donation_in(rid: str) -> uuid.UUID | None:
    """The donation a receipt id names (not checked: anyone can read this part)."""
    try:
        raw = _unb64url(rid)
    except (ValueError, TypeError):
        return None
    if len(raw) != 16 + MAC_BYTES:
        return None
    return uuid.UUID(bytes=raw[:16])


def donation_of(secret: bytes, rid: str) -> uuid.UUID | None:
    """The donation of a genuine receipt id, else None (compared in constant time)."""
    donation = donation_in(rid)
    if donation is None:
        return None
    return donation if hmac.compare_digest(receipt_id(secret, donation), rid) else None


@dataclass(frozen=True)
class Pinned:
    """What the receipt holder keeps: the exchange's key and the checkpoint issued with."""

    public_key: bytes
    issued: Checkpoint


def pinned_fragment(pinned: Pinned) -> str:
    """The link's fragment (without '#'): the pinned key and the issued checkpoint."""
    head = pinned.issued.head
    return urlencode(
        {
            "k": _b64url(pinned.public_key),
            "n": str(head.tree_size),
            "r": _b64url(head.root_hash),
            "c": _b64url(head.chain_hash),
            "s": _b64url(pinned.issued.signature),
        }
    )


def parse_fragment(fragment: str) -> Pinned:
    """The inverse of `pinned_fragment`; ValueError when a part is missing or malformed."""
    fields = {k: v[0] for k, v in parse_qs(fragment.lstrip("#"), strict_parsing=True).items()}
    try:
        key = _unb64url(fields["k"])
        head = TreeHead(int(fields["n"]), _unb64url(fields["r"]), _unb64url(fields["c"]))
        signature = _unb64url(fields["s"])
    except KeyError as exc:
        raise ValueError(f"the receipt link lacks its {exc.args[0]!r} part") from None
    if len(key) != 32 or len(head.root_hash) != 32 or len(head.chain_hash) != 32:
        raise ValueError("the receipt link's key, root or chain hash is not 32 bytes")
    return Pinned(key, Checkpoint(head, hashlib.sha256(key).digest(), signature))


def receipt_link(base_url: str, rid: str, pinned: Pinned) -> str:
    """The whole link a donor is handed (and the QR code holds)."""
    return f"{base_url.rstrip('/')}/receipts/{rid}#{pinned_fragment(pinned)}"


# ---- the archived event's canonical bytes, read back ----


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        if self.at + n > len(self.data):
            raise ValueError("the canonical bytes end early")
        out = self.data[self.at : self.at + n]
        self.at += n
        return out

    def u32(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def i64(self) -> int:
        return int(struct.unpack(">q", self.take(8))[0])

    def blob(self) -> bytes:
        return self.take(self.u32())

    def text(self) -> str:
        return self.blob().decode("utf-8")

    def present(self) -> bool:
        flag = self.take(1)
        if flag not in (b"\x00", b"\x01"):
            raise ValueError("a presence byte is neither 0 nor 1")
        return flag == b"\x01"


def parse_content_bytes(data: bytes) -> ArchivedRow:
    """The row whose `content_bytes` these are (docs/audit.md, "What is hashed").

    Raises ValueError for bytes that are not exactly one row's layout."""
    r = _Reader(data)
    if r.take(len(CONTENT_TAG)) != CONTENT_TAG:
        raise ValueError("the canonical bytes do not start with the archive row tag")
    event_id = uuid.UUID(bytes=r.take(16))
    topic = r.text()
    partition = int(struct.unpack(">i", r.take(4))[0])
    offset = r.i64()
    key = r.blob() if r.present() else None
    value = r.blob()
    headers = [(r.text(), r.text()) for _ in range(r.u32())]
    event_type = r.text()
    stream_id = r.text() if r.present() else None
    stream_seq = r.i64() if r.present() else None
    recorded_at = None
    if r.present():
        recorded_at = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=r.i64())
    if r.at != len(data):
        raise ValueError("bytes are left after the row")
    return ArchivedRow(
        event_id, topic, partition, offset, key, value, headers, event_type,
        stream_id, stream_seq, recorded_at,
    )  # fmt: skip


# ---- the checks ----


@dataclass(frozen=True)
class Check:
    """One check of a receipt: `name` (event, inclusion, key_change, signature, issued,
    consistency; key_change only when the newest checkpoint is signed by another key), the
    result, and why it failed (a `reason` code the page translates, and a detail in English)."""

    name: str
    ok: bool
    reason: str = ""
    detail: str = ""
    handovers: tuple[Rotation, ...] = ()
    """For `key_change`: the hand-overs followed from the pinned key to the newest one."""


def _event_check(doc: dict[str, Any], rid: str, canonical: bytes) -> Check:
    """The archived event is this receipt's donation, with the amount and fund shown."""
    try:
        row = parse_content_bytes(canonical)
        envelope = json.loads(row.value)
        payload = envelope["payload"]
    except (ValueError, KeyError, TypeError) as exc:
        return Check("event", False, "event_unreadable", str(exc))
    shown = doc.get("donation", {})
    if row.event_type != "DonationReceived" or envelope.get("event_type") != "DonationReceived":
        return Check("event", False, "event_not_donation", f"it is a {row.event_type}")
    if str(payload.get("donation_id")) != str(donation_in(rid)):
        return Check("event", False, "event_other_donation", str(payload.get("donation_id")))
    amount = payload.get("donation", {}).get("amount", {})
    if (amount.get("amount_minor"), amount.get("currency")) != (
        shown.get("amount", {}).get("amount_minor"),
        shown.get("amount", {}).get("currency"),
    ) or str(payload.get("fund_id")) != str(shown.get("fund_id")):
        return Check("event", False, "event_differs", "the amount or fund shown is not archived")
    return Check("event", True)


def _short(key_id: bytes) -> str:
    return f"key id {key_id.hex()[:16]}…"


def _forwards(ring: KeyRing, pinned_id: bytes) -> list[Rotation]:
    """The hand-overs `ring` followed forwards from the pinned key, in order."""
    chain, current = [], pinned_id
    for r in ring.handovers:  # predecessors of the pinned key first, then its successors
        if r.old_key_id == current:
            chain.append(r)
            current = r.new_key_id
    return chain


def _why_stopped(rotations: list[Rotation], end: bytes, signer: bytes) -> tuple[str, str]:
    """(reason, detail): why no followed hand-over leads from key `end` on to `signer`."""
    from_end = [r for r in rotations if r.old_key_id == end]
    valid = {(r.new_public_key, r.after) for r in from_end if rotation_problem(r) is None}
    if len(valid) > 1:
        return "handover_fork", f"{_short(end)} handed over {len(valid)} times: none is trusted"
    if valid:
        return "handover_backwards", f"the hand-over from {_short(end)} goes back in time"
    for r in from_end:
        why = rotation_problem(r)
        if why is not None:
            return "handover_invalid", f"the hand-over at tree size {r.after}: {why}"
    return (
        "no_handover",
        f"the newest checkpoint is signed by {_short(signer)}, and no hand-over signed by "
        f"{_short(end)} leads to it",
    )


def _handover_detail(followed: list[Rotation]) -> str:
    """The hand-overs followed, in words."""
    steps = [f"{_short(r.old_key_id)} to {_short(r.new_key_id)}" for r in followed]
    first, *then = followed
    text = (
        f"the exchange's key changed at tree size {first.after} ({steps[0]}); the old key you "
        "pinned signed the change"
    )
    for r, step in zip(then, steps[1:], strict=True):
        text += f"; it changed again at tree size {r.after} ({step}), signed by the key before"
    return text


def _signed_problem(cp: Checkpoint, ring: KeyRing) -> tuple[str, str] | None:
    """(reason, detail) when `cp` is not signed by its key in `ring` within that key's span."""
    trusted = ring.keys[cp.key_id]
    size = cp.head.tree_size
    if size < trusted.lowest or (trusted.highest is not None and size > trusted.highest):
        return "outside_span", ring.problem(cp) or ""
    try:
        trusted.key.verify(cp.signature, note(cp.head))
    except InvalidSignature:
        return "bad_signature", "the Ed25519 signature does not verify with the key"
    return None


def key_checks(newest: Checkpoint, pinned: Pinned, rotations: list[Rotation]) -> list[Check]:
    """Whether the newest checkpoint and the issued one are signed by keys the holder trusts.

    The issued checkpoint must be signed by the pinned key. The newest may be signed by a key
    reached from the pinned one through hand-overs each signed by both keys (`KeyRing`); then a
    `key_change` check names them. Each key counts only within its span of tree sizes."""
    pinned_id = hashlib.sha256(pinned.public_key).digest()
    try:
        ring = KeyRing(Ed25519PublicKey.from_public_bytes(pinned.public_key), rotations)
    except ValueError:
        unusable = Check("signature", False, "bad_signature", "the pinned key is not Ed25519's")
        return [unusable, replace(unusable, name="issued")]
    checks: list[Check] = []
    reached = True
    bad: tuple[str, str] | None
    if newest.key_id != pinned_id:
        chain = _forwards(ring, pinned_id)
        ids = [r.new_key_id for r in chain]
        reached = newest.key_id in ids
        if reached:
            followed = chain[: ids.index(newest.key_id) + 1]
            checks.append(Check("key_change", True, "", _handover_detail(followed), (*followed,)))
        else:
            end = ids[-1] if ids else pinned_id
            checks.append(Check("key_change", False, *_why_stopped(rotations, end, newest.key_id)))
    if reached:
        bad = _signed_problem(newest, ring)
    else:
        bad = (
            "key_changed",
            f"signed by {_short(newest.key_id)}, which the pinned key did not hand over to",
        )
    checks.append(Check("signature", bad is None, *(bad or ("", ""))))
    if pinned.issued.key_id != pinned_id:
        bad = ("key_changed", "the issued checkpoint is not the pinned key's")
    else:
        bad = _signed_problem(pinned.issued, ring)
    checks.append(Check("issued", bad is None, *(bad or ("", ""))))
    return checks


def receipt_checks(doc: dict[str, Any], rid: str, pinned: Pinned) -> list[Check]:
    """Every check of a receipt answer `doc` against what its holder pinned, in order."""
    try:
        canonical = base64.b64decode(doc["event"]["canonical_bytes"], validate=True)
        index, newest = int(doc["event"]["leaf_index"]), checkpoint_from_json(doc["checkpoint"])
        path = [bytes.fromhex(p) for p in doc["inclusion_proof"]]
        consistency = doc.get("consistency") or {}
        proof = [bytes.fromhex(p) for p in consistency.get("proof", [])]
        from_size = int(consistency.get("from_size", -1))
        rotations = [rotation_from_json(r) for r in doc.get("key_rotations") or []]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [Check("answer", False, "answer_unreadable", repr(exc))]
    checks = [_event_check(doc, rid, canonical)]
    leaf = leaf_hash(hashlib.sha256(canonical).digest())
    try:
        root = root_from_inclusion(index, newest.head.tree_size, leaf, path)
        included = root == newest.head.root_hash
        why = "" if included else "the proof leads to another root: the event or proof changed"
    except ValueError as exc:
        included, why = False, str(exc)
    checks.append(Check("inclusion", included, "" if included else "not_included", why))
    checks += key_checks(newest, pinned, rotations)
    old = pinned.issued.head
    if from_size != old.tree_size:
        checks.append(Check("consistency", False, "no_consistency", f"proof from size {from_size}"))
    elif verify_consistency(
        old.tree_size, newest.head.tree_size, old.root_hash, newest.head.root_hash, proof
    ):
        checks.append(Check("consistency", True))
    else:
        checks.append(
            Check(
                "consistency",
                False,
                "not_consistent",
                f"the log of {newest.head.tree_size} events does not extend the one of "
                f"{old.tree_size} the receipt was issued with: it was rewritten",
            )
        )
    return checks
