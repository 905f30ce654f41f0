"""The archive's hash chain and checkpoint signatures: canonical bytes that do not drift, a chain
that every kind of tampering breaks, and signatures only the exchange's key makes."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.evidence import chain, checkpoint, merkle
from services.audit.evidence.chain import ArchivedRow
from services.audit.evidence.verify import StoredRow, follows

pytestmark = pytest.mark.unit

ROW = ArchivedRow(
    event_id=uuid.UUID("5081eb2c-7380-59a2-96b2-ba0ad8280d76"),
    topic="needs.events",
    partition=2,
    offset=7,
    key=b"need-1",
    value='{"title": "送餐"}'.encode(),
    headers=[["event_id", "5081eb2c-7380-59a2-96b2-ba0ad8280d76"], ["event_type", "NeedPosted"]],
    event_type="NeedPosted",
    stream_id="need:1",
    stream_seq=0,
    recorded_at=datetime(2026, 12, 5, 2, 0, 1, 250, tzinfo=UTC),
)


def test_the_canonical_bytes_are_the_documented_layout() -> None:
    """Pinned: a change here changes every content hash ever recorded (docs/audit.md)."""
    expected = (
        b"community-exchange/archive-row/v1\x00"
        + ROW.event_id.bytes
        + b"\x00\x00\x00\x0cneeds.events"
        + b"\x00\x00\x00\x02"
        + b"\x00\x00\x00\x00\x00\x00\x00\x07"
        + b"\x01\x00\x00\x00\x06need-1"
        + len(ROW.value).to_bytes(4, "big")
        + ROW.value
        + b"\x00\x00\x00\x02"
        + b"\x00\x00\x00\x08event_id\x00\x00\x00\x24" + str(ROW.event_id).encode()
        + b"\x00\x00\x00\x0aevent_type\x00\x00\x00\x0aNeedPosted"
        + b"\x00\x00\x00\x0aNeedPosted"
        + b"\x01\x00\x00\x00\x06need:1"
        + b"\x01" + (0).to_bytes(8, "big")
        + b"\x01" + (1_796_436_001_000_250).to_bytes(8, "big")
    )  # fmt: skip
    assert chain.content_bytes(ROW) == expected
    assert chain.content_hash(ROW) == hashlib.sha256(expected).digest()


def test_absent_fields_are_marked_not_confused_with_empty_ones() -> None:
    poison = dataclasses.replace(ROW, key=None, stream_id=None, stream_seq=None, recorded_at=None)
    empty = dataclasses.replace(ROW, key=b"", stream_id="", stream_seq=0)
    assert chain.content_hash(poison) != chain.content_hash(
        dataclasses.replace(empty, recorded_at=None, stream_seq=None)
    )


def test_the_same_instant_in_another_zone_hashes_the_same() -> None:
    """PostgreSQL stores an instant, not a zone: the hash must not depend on the zone."""
    assert ROW.recorded_at is not None
    shanghai = ROW.recorded_at.astimezone(timezone(timedelta(hours=8)))
    assert chain.content_hash(dataclasses.replace(ROW, recorded_at=shanghai)) == (
        chain.content_hash(ROW)
    )


@given(
    st.sampled_from(
        [
            {"topic": "funds.events"},
            {"partition": 3},
            {"offset": 8},
            {"key": b"need-2"},
            {"value": '{"title": "送餐 "}'.encode()},
            {"headers": [["event_id", "x"]]},
            {"event_type": "NeedAmended"},
            {"stream_seq": 1},
            {"recorded_at": datetime(2026, 12, 5, 2, 0, 1, 251, tzinfo=UTC)},
            {"event_id": uuid.UUID(int=1)},
        ]
    )
)
@settings(max_examples=20, deadline=None)
def test_any_changed_field_changes_the_content_hash(change: dict[str, object]) -> None:
    assert chain.content_hash(dataclasses.replace(ROW, **change)) != chain.content_hash(ROW)  # type: ignore[arg-type]


def test_the_chain_links_each_row_to_the_one_before() -> None:
    contents = [hashlib.sha256(bytes([i])).digest() for i in range(4)]
    links = chain.chain(chain.GENESIS, contents)
    assert links[0] == hashlib.sha256(bytes(32) + contents[0]).digest()
    assert links[3] == hashlib.sha256(links[2] + contents[3]).digest()
    swapped = chain.chain(chain.GENESIS, [contents[0], contents[2], contents[1], contents[3]])
    dropped = chain.chain(chain.GENESIS, [contents[0], contents[2], contents[3]])
    assert swapped[3] != links[3] and dropped[2] != links[3]


def head(size: int = 3) -> checkpoint.TreeHead:
    leaves = [merkle.leaf_hash(bytes([i])) for i in range(size)]
    return checkpoint.TreeHead(size, merkle.root(leaves), hashlib.sha256(b"head").digest())


def test_the_signed_note_is_readable_text() -> None:
    h = head()
    lines = checkpoint.note(h).decode().splitlines()
    assert lines[0] == checkpoint.ORIGIN and lines[1] == "3"
    assert lines[3] == f"chain {h.chain_hash.hex()}"


def test_a_checkpoint_verifies_with_the_exchanges_key_only() -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed = checkpoint.sign(head(), ours)
    assert checkpoint.problem(signed, ours.public_key()) is None
    assert "unknown key" in (checkpoint.problem(signed, theirs.public_key()) or "")
    foreign = checkpoint.sign(head(), theirs)
    impostor = dataclasses.replace(foreign, key_id=signed.key_id)  # claims to be ours
    assert "not validly signed" in (checkpoint.problem(impostor, ours.public_key()) or "")
    bigger = dataclasses.replace(signed, head=head(4))  # a head the key never signed
    assert "not validly signed" in (checkpoint.problem(bigger, ours.public_key()) or "")


def test_the_key_id_is_the_sha256_of_the_raw_public_key() -> None:
    key = Ed25519PrivateKey.generate().public_key()
    raw = checkpoint.raw_public_key(key)
    assert len(raw) == 32 and checkpoint.key_id(key) == hashlib.sha256(raw).digest()
    assert checkpoint.raw_public_key(checkpoint.public_key_from_hex(raw.hex())) == raw


def test_a_published_checkpoint_verifies_by_the_documented_recipe_alone() -> None:
    """docs/audit.md, step by step, with nothing of ours but the event's payload."""
    import base64
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from services.ledger.checkpoints import checkpoint_envelope, checkpoint_event_id

    key = Ed25519PrivateKey.generate()
    signed = checkpoint.sign(head(5), key)
    env = checkpoint_envelope(
        signed, checkpoint_event_id(5, signed.head.root_hash), datetime.now(UTC)
    )
    p = env.payload.model_dump()
    public = checkpoint.raw_public_key(key.public_key())
    assert hashlib.sha256(public).hexdigest() == p["key_id"]
    note = (
        f"community-exchange/ledger\n{p['tree_size']}\n"
        f"{base64.b64encode(bytes.fromhex(p['root_hash'])).decode()}\nchain {p['chain_hash']}\n"
    ).encode()
    Ed25519PublicKey.from_public_bytes(public).verify(bytes.fromhex(p["signature"]), note)


def test_an_empty_tree_checkpoint_under_another_key_is_reported_not_skipped() -> None:
    from services.audit.evidence.verify import ArchiveChecker

    trusted = Ed25519PrivateKey.generate()
    empty = checkpoint.TreeHead(0, merkle.Frontier().root(), chain.GENESIS)
    good = ArchiveChecker([checkpoint.sign(empty, trusted)], trusted.public_key())
    assert good.finish() is None and good.summary.checkpoints == 1
    forged = checkpoint.sign(empty, Ed25519PrivateKey.generate())
    bad = ArchiveChecker([forged], trusted.public_key())
    finding = bad.finish()
    assert finding is not None and finding.kind == "checkpoint" and "unknown key" in finding.detail


def test_the_public_key_is_read_from_hex_pem_or_the_key_commands_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from services.audit.evidence.keys import KeyRefused, anchored_public_key, public_key_from_text
    from services.settings import Settings

    public = Ed25519PrivateKey.generate().public_key()
    raw = checkpoint.raw_public_key(public)
    pem = public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()
    for text in (raw.hex(), pem, f"public_key  {raw.hex()}\nfingerprint ab\n{pem}"):
        assert checkpoint.raw_public_key(public_key_from_text(text)) == raw
    conf = Settings(var_dir=tmp_path / "var")
    inside = tmp_path / "var" / "keys" / "pinned.pub"
    inside.parent.mkdir(parents=True)
    inside.write_text(raw.hex())
    with pytest.raises(KeyRefused, match="no trust anchor"):
        anchored_public_key(conf, None, str(inside))
    with pytest.raises(KeyRefused, match="no trusted public key"):
        anchored_public_key(conf, None, None)
    outside = tmp_path / "pinned.pub"
    outside.write_text(pem)
    assert checkpoint.raw_public_key(anchored_public_key(conf, None, str(outside))) == raw
    monkeypatch.setenv("EXCHANGE_AUDIT_PUBLIC_KEY", raw.hex())
    from_env = Settings(var_dir=tmp_path / "var")
    assert checkpoint.raw_public_key(anchored_public_key(from_env, None, None)) == raw


def rows_after(previous: bytes, n: int) -> list[StoredRow]:
    """`n` rows hashed and linked after `previous`, as the ledger writes them."""
    rows = []
    for i in range(n):
        row = dataclasses.replace(ROW, event_id=uuid.uuid4(), offset=i)
        content = chain.content_hash(row)
        previous = chain.link(previous, content)
        rows.append(StoredRow(100 + i, row, content, previous))
    return rows


def test_rows_archived_after_the_walk_must_link_to_its_last_row() -> None:
    walked = chain.link(chain.GENESIS, b"\x01" * 32)
    rows = rows_after(walked, 3)
    assert follows(walked, rows) is None
    assert follows(walked, []) is None

    other_head = follows(chain.GENESIS, rows)
    assert other_head is not None and (other_head.kind, other_head.archive_seq) == ("changed", 100)
    edited = [
        rows[0],
        dataclasses.replace(rows[1], row=dataclasses.replace(ROW, offset=9)),
        rows[2],
    ]
    found = follows(walked, edited)
    assert found is not None and (found.kind, found.archive_seq) == ("changed", 101)
    unhashed = [*rows[:2], dataclasses.replace(rows[2], chain_hash=None)]
    found = follows(walked, unhashed)
    assert found is not None and (found.kind, found.archive_seq) == ("inserted", 102)
    skipped = follows(walked, [rows[0], rows[2]])
    assert skipped is not None and skipped.archive_seq == 102 and "does not link" in skipped.detail
