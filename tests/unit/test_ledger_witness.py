"""What the ledger keeps outside the database, without a database: its head file (written
atomically, read back exactly, compared with the archive's newest row), the checkpoint files of
the witness directory (never overwritten), and how `verify --witness` reads and judges them."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.checkpoints import CheckpointRecorded
from services.audit.evidence import checkpoint
from services.audit.evidence.chain import GENESIS
from services.audit.evidence.ledger_head import (
    EMPTY,
    HEAD_FILE,
    Head,
    HeadRecord,
    read_record,
    record_from_json,
    record_json,
)
from services.audit.evidence.proofs import checkpoint_from_json
from services.audit.evidence.witness import WitnessUnreadable, beyond_head, read_witness
from services.ledger.head import judge, write_record
from services.ledger.witness import checkpoint_file_name, witness_path, write_checkpoint
from services.settings import Settings

pytestmark = pytest.mark.unit


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


H5 = Head(5, digest("five"), 5)
H9 = Head(9, digest("nine"), 9)


# --- the head file --------------------------------------------------------------------------


def test_a_head_record_round_trips_through_its_json() -> None:
    for record in (HeadRecord(H5), HeadRecord(H5, H9), HeadRecord(EMPTY)):
        assert record_from_json(json.loads(json.dumps(record_json(record)))) == record


def test_the_head_file_is_replaced_whole_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "witness" / HEAD_FILE
    assert read_record(path) is None  # none yet: the ledger trusts the archive once
    write_record(path, HeadRecord(H5, H9), durable=True)
    assert read_record(path) == HeadRecord(H5, H9)
    write_record(path, HeadRecord(H9), durable=False)
    assert read_record(path) == HeadRecord(H9)
    assert os.listdir(path.parent) == [HEAD_FILE]


@pytest.mark.parametrize(
    "text", ["", "{", "[]", '{"committed": {"archive_seq": 1}}', '{"committed": {"archive_seq":'
     ' 1, "chain_hash": "00", "tree_size": 1}}']
)  # fmt: skip
def test_a_head_file_that_is_not_one_is_an_error_never_absent(tmp_path: Path, text: str) -> None:
    """Treating it as absent would make the ledger trust the archive as it is again."""
    path = tmp_path / HEAD_FILE
    path.write_text(text)
    with pytest.raises(ValueError, match="not a ledger head file"):
        read_record(path)


def test_the_archive_must_end_at_the_committed_or_the_pending_head() -> None:
    assert judge(HeadRecord(H5), (5, H5.chain_hash)) == "committed"
    # a crash between the intent and the commit: either outcome is the ledger's
    assert judge(HeadRecord(H5, H9), (5, H5.chain_hash)) == "committed"
    assert judge(HeadRecord(H5, H9), (9, H9.chain_hash)) == "pending"
    # a row beyond the head, the head's row rehashed, rows deleted: not the ledger's archive
    assert judge(HeadRecord(H5), (6, digest("forged"))) is None
    assert judge(HeadRecord(H5), (5, digest("rehashed"))) is None
    assert judge(HeadRecord(H5), (4, digest("four"))) is None
    assert judge(HeadRecord(H5), (5, None)) is None  # no hashes at all
    assert judge(HeadRecord(H5), None) is None  # wiped
    assert judge(HeadRecord(EMPTY), None) == "committed"
    assert judge(HeadRecord(EMPTY), (1, digest("one"))) is None


# --- the checkpoint files -------------------------------------------------------------------


def signed(size: int, key: Ed25519PrivateKey | None = None) -> checkpoint.Checkpoint:
    head = checkpoint.TreeHead(size, digest(f"root {size}"), digest(f"chain {size}"))
    return checkpoint.sign(head, key or Ed25519PrivateKey.generate())


def test_the_witness_dir_defaults_to_the_var_dir(tmp_path: Path) -> None:
    assert witness_path(Settings(var_dir=tmp_path)) == tmp_path / "witness"
    assert witness_path(Settings(var_dir=tmp_path, witness_dir=Path("/mnt/w"))) == Path("/mnt/w")


def test_a_checkpoint_file_holds_the_payload_held_checkpoints_are_read_from(
    tmp_path: Path,
) -> None:
    cp = signed(1000)
    assert write_checkpoint(tmp_path, cp)
    path = tmp_path / "checkpoint-000000001000.json"
    assert checkpoint_file_name(1000) == path.name
    doc = json.loads(path.read_text())
    assert CheckpointRecorded.model_validate(doc).tree_size == 1000
    assert checkpoint_from_json(doc) == cp
    assert sorted(os.listdir(tmp_path)) == [path.name]  # no temporary file left


def test_an_existing_checkpoint_file_is_never_overwritten(tmp_path: Path) -> None:
    first, other = signed(20), signed(20)  # same size, another head and key
    assert write_checkpoint(tmp_path, first)
    before = (tmp_path / checkpoint_file_name(20)).read_text()
    assert not write_checkpoint(tmp_path, other)
    assert not write_checkpoint(tmp_path, first)
    assert (tmp_path / checkpoint_file_name(20)).read_text() == before
    assert sorted(os.listdir(tmp_path)) == [checkpoint_file_name(20)]


def test_verify_reads_every_checkpoint_file_and_notes_the_head_file(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    cps = [signed(size, key) for size in (20, 40)]
    for cp in cps:
        write_checkpoint(tmp_path, cp)
    (tmp_path / "notes.txt").write_text("not a checkpoint: ignored")
    found = read_witness(tmp_path)
    names = {cp: tmp_path / checkpoint_file_name(cp.head.tree_size) for cp in cps}
    assert found.checkpoints == names
    assert found.head_file is None
    write_record(tmp_path / HEAD_FILE, HeadRecord(H5), durable=False)
    assert read_witness(tmp_path).head_file == tmp_path / HEAD_FILE


def test_a_missing_or_empty_or_mislabelled_witness_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(WitnessUnreadable, match="does not exist"):
        read_witness(tmp_path / "nowhere")
    write_record(tmp_path / HEAD_FILE, HeadRecord(H5), durable=False)
    with pytest.raises(WitnessUnreadable, match="holds no checkpoint file"):
        read_witness(tmp_path)
    write_checkpoint(tmp_path, signed(20))
    os.rename(tmp_path / checkpoint_file_name(20), tmp_path / checkpoint_file_name(21))
    with pytest.raises(WitnessUnreadable, match="not the one its name says"):
        read_witness(tmp_path)
    (tmp_path / checkpoint_file_name(21)).write_text("{}")
    with pytest.raises(WitnessUnreadable, match="is not a checkpoint"):
        read_witness(tmp_path)


# --- verify against the ledger's head -------------------------------------------------------


def test_rows_beyond_the_ledgers_head_are_not_the_ledgers() -> None:
    record = HeadRecord(H5, H9)
    # the ledger wrote 5 (and its 9 did not commit); the walk read 7: the 6th is foreign
    found = beyond_head(record, {H5: True, H9: False}, 7, 7, "w/ledger-head.json")
    assert found is not None and (found.kind, found.position) == ("inserted", 6)
    assert "not written by the ledger" in found.detail and "w/ledger-head.json" in found.detail
    # the pending batch did commit: 9 rows are the ledger's
    assert beyond_head(record, {H5: True, H9: True}, 9, 9, "f") is None
    # a ledger still running: the walk saw fewer rows than it has written since
    assert beyond_head(record, {H5: True, H9: True}, 3, 12, "f") is None
    # a copy of the head file from before the latest checkpoint: the signature vouches for
    # the rows up to it, and the rows after it cannot be judged from that copy
    assert beyond_head(HeadRecord(H5), {H5: True}, 12, 12, "f", signed=9) is None
    late = beyond_head(HeadRecord(H9), {H9: True}, 12, 12, "f", signed=9)
    assert late is not None and (late.kind, late.position) == ("inserted", 10)


def test_rows_the_ledger_wrote_that_are_gone_or_rewritten_are_named() -> None:
    gone = beyond_head(HeadRecord(H9), {H9: False}, 4, 4, "f")
    assert gone is not None and (gone.kind, gone.position) == ("missing", 4)
    rewritten = beyond_head(HeadRecord(H9), {H9: False}, 9, 9, "f")
    assert rewritten is not None and (rewritten.kind, rewritten.position) == ("changed", 9)
    empty = Head(0, GENESIS, 0)
    foreign = beyond_head(HeadRecord(empty), {empty: True}, 2, 2, "f")
    assert foreign is not None and (foreign.kind, foreign.position) == ("inserted", 1)
