"""Donor receipts, the pure parts: receipt ids, the pinned link, canonical bytes read back, the
checks, and the test vectors the browser's verifier is held to (tests/vectors/receipts.json)."""

from __future__ import annotations

import base64
import json
import re
import uuid
from pathlib import Path

import pytest

from services.audit.entrypoints.receipt_cli import Unreadable, read_source, report, split_link
from services.audit.evidence.chain import content_bytes
from services.audit.evidence.merkle import leaf_hash, verify_consistency, verify_inclusion
from services.audit.evidence.receipt import (
    Check,
    donation_in,
    donation_of,
    parse_content_bytes,
    parse_fragment,
    pinned_fragment,
    receipt_checks,
    receipt_id,
    receipt_link,
)
from services.audit.evidence.rotation import rotation_from_json, rotation_note, rotation_problem
from services.web.i18n import LANGUAGES, catalogue
from tests.vectors import make_receipts

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "receipts.json"
WEB = Path(__file__).resolve().parents[2] / "services" / "web"


@pytest.fixture(scope="module")
def vectors() -> dict:
    return json.loads(VECTORS.read_text(encoding="utf-8"))


def test_the_vectors_file_is_what_the_python_side_makes() -> None:
    # regenerate with: python -m tests.vectors.make_receipts > tests/vectors/receipts.json
    assert VECTORS.read_text(encoding="utf-8") == make_receipts.dumps()


def test_python_verifiers_agree_with_every_merkle_vector(vectors: dict) -> None:
    for c in vectors["inclusion"]:
        leaf = leaf_hash(bytes.fromhex(c["leaf_data"]))
        proof = [bytes.fromhex(p) for p in c["proof"]]
        got = verify_inclusion(c["index"], c["size"], leaf, proof, bytes.fromhex(c["root"]))
        assert got is c["valid"], c
    for c in vectors["consistency"]:
        proof = [bytes.fromhex(p) for p in c["proof"]]
        got = verify_consistency(
            c["old_size"], c["new_size"], bytes.fromhex(c["old_root"]),
            bytes.fromhex(c["new_root"]), proof,
        )  # fmt: skip
        assert got is c["valid"], c
    # the RFC 6962 edge cases are there, valid and not
    sizes = {(c["size"], c["index"]) for c in vectors["inclusion"] if c["valid"]}
    assert {(1, 0), (8, 7), (16, 0), (33, 32)} <= sizes
    pairs = {(c["old_size"], c["new_size"]) for c in vectors["consistency"] if c["valid"]}
    assert {(1, 1), (1, 2), (4, 8), (8, 8), (7, 8), (16, 17), (32, 33)} <= pairs


def test_canonical_bytes_read_back_to_the_row(vectors: dict) -> None:
    for c in vectors["canonical"]:
        row = parse_content_bytes(bytes.fromhex(c["bytes"]))
        assert content_bytes(row).hex() == c["bytes"]
        assert (str(row.event_id), row.topic, row.offset) == (
            c["event_id"],
            c["topic"],
            c["offset"],
        )
    with pytest.raises(ValueError):
        parse_content_bytes(bytes.fromhex(vectors["canonical"][0]["bytes"]) + b"\x00")
    with pytest.raises(ValueError):
        parse_content_bytes(bytes.fromhex(vectors["canonical"][0]["bytes"])[:-3])


def test_a_receipt_id_is_the_donation_and_an_hmac_nobody_guesses() -> None:
    # Given a donation and the exchange's receipt secret
    donation = uuid.uuid4()
    rid = receipt_id(b"secret", donation)
    # Then the id names the donation, and only the secret's holder makes a valid one
    assert donation_in(rid) == donation
    assert donation_of(b"secret", rid) == donation
    assert donation_of(b"another secret", rid) is None
    forged = base64.urlsafe_b64encode(donation.bytes + bytes(16)).rstrip(b"=").decode()
    assert donation_of(b"secret", forged) is None
    assert donation_of(b"secret", str(donation)) is None
    assert donation_of(b"secret", "!!") is None


def test_the_link_pins_the_key_and_the_issued_checkpoint(vectors: dict) -> None:
    case = vectors["receipts"][0]
    pinned = parse_fragment(case["fragment"])
    assert pinned_fragment(pinned) == case["fragment"]
    link = receipt_link("https://exchange.example/", case["receipt_id"], pinned)
    base, rid, again = split_link(link)
    assert (base, rid, again) == ("https://exchange.example", case["receipt_id"], pinned)
    with pytest.raises(ValueError):
        parse_fragment("k=abc&n=3")
    with pytest.raises(Unreadable):
        split_link(f"https://exchange.example/receipts/{rid}")


VERIFIED = {"as issued", "handed over once", "handed over twice"}


def test_receipt_checks_catch_each_tampering(vectors: dict) -> None:
    head, *cases = vectors["receipts"]
    pinned = parse_fragment(head["fragment"])
    for case in cases:
        checks = receipt_checks(case["answer"], head["receipt_id"], pinned)
        assert {c.name: c.ok for c in checks} == case["checks"], case["what"]
        assert {c.name: c.reason for c in checks if not c.ok} == case["reasons"], case["what"]
        assert [r.after for c in checks for r in c.handovers] == case["key_changes"]
    assert {c["what"] for c in cases if all(c["checks"].values())} == VERIFIED


def test_hand_over_statements_verify_under_both_keys_only(vectors: dict) -> None:
    for c in vectors["rotations"]:
        r = rotation_from_json(c)
        note = rotation_note(r.old_public_key, r.new_public_key, r.after)
        assert base64.b64decode(c["note"]) == note
        assert (rotation_problem(r) is None) is c["valid"], c["what"]
    assert [c["valid"] for c in vectors["rotations"]].count(True) == 1


def _case(vectors: dict, what: str) -> list[Check]:
    """The checks of the receipt vector `what`."""
    head, *cases = vectors["receipts"]
    case = next(c for c in cases if c["what"] == what)
    return receipt_checks(case["answer"], head["receipt_id"], parse_fragment(head["fragment"]))


def test_a_receipt_follows_the_key_hand_overs_from_the_pinned_key(vectors: dict) -> None:
    # Given a receipt issued under the pinned key, and an exchange that has since handed over
    # to a second key and then a third, each change signed by both keys
    checks = _case(vectors, "handed over twice")
    # Then the newest checkpoint counts as signed, and the check names both hand-overs
    change = next(c for c in checks if c.name == "key_change")
    assert change.ok and [r.after for r in change.handovers] == [5, 7]
    assert "the exchange's key changed at tree size 5" in change.detail
    assert "the old key you pinned signed the change" in change.detail
    assert "changed again at tree size 7" in change.detail
    # …and the command prints it on the key change's own line
    line = next(x for x in report(checks).splitlines() if x.startswith("ok   key_change"))
    assert "the old key you pinned signed the change" in line
    # and the issued checkpoint is still the pinned key's
    assert next(c for c in checks if c.name == "issued").ok


def test_a_hand_over_the_old_key_did_not_sign_verifies_nothing(vectors: dict) -> None:
    # Given a statement handing over from the pinned key that only the new key signed
    checks = _case(vectors, "a hand-over not signed by the old key")
    failed = {c.name: c for c in checks if not c.ok}
    # Then the key change fails with why, and so does the newest checkpoint's signature
    assert set(failed) == {"key_change", "signature"}
    assert "not signed by the old key it names" in failed["key_change"].detail
    assert "FAIL key_change: handover_invalid" in report(checks)


def test_a_key_signing_outside_its_span_is_not_trusted(vectors: dict) -> None:
    for what in ("a new key signs before its hand-over", "a retired key signs after its hand-over"):
        checks = _case(vectors, what)
        failed = {c.name: c for c in checks if not c.ok}
        assert set(failed) == {"signature"}, what
        assert failed["signature"].reason == "outside_span"
        assert "outside its span" in failed["signature"].detail


def test_a_receipt_file_holds_the_link_and_maybe_the_answer(tmp_path: Path) -> None:
    plain = tmp_path / "receipt.txt"
    plain.write_text("https://x.example/receipts/abc#k=1\n")
    assert read_source(str(plain)) == ("https://x.example/receipts/abc#k=1", None)
    bundle = tmp_path / "receipt.json"
    bundle.write_text(json.dumps({"link": "https://x.example/receipts/abc#k=1", "answer": {}}))
    assert read_source(str(bundle)) == ("https://x.example/receipts/abc#k=1", {})


def test_every_receipt_string_is_in_every_catalogue() -> None:
    text = "".join(p.read_text(encoding="utf-8") for p in WEB.glob("templates/receipt*.html"))
    keys = set(re.findall(r'"(receipt\.[a-z_.]+[a-z])"', text)) | set(
        re.findall(r't\("(receipt\.[a-z_.]+)"', text)
    )
    reasons = re.search(r"for r in \[([^\]]+)\]", text)
    assert reasons is not None
    keys |= {"receipt.reason." + r.strip(' "') for r in reasons.group(1).split(",")}
    uses = {f"receipt.use.{u}" for u in ("disbursed", "reserved", "refunded", "available")}
    assert len(keys) > 40
    for lang in LANGUAGES:
        missing = sorted(k for k in keys | uses if k not in catalogue(lang))
        assert not missing, (lang, missing)
