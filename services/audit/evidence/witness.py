"""What `exchange audit verify --witness DIR` reads: the checkpoints and the ledger's own head
that the ledger wrote outside the database (services/ledger/witness.py, services/ledger/head.py).

Each `checkpoint-*.json` is a held checkpoint: signed by the trusted key (or by a key it handed
over to or from, in a `rotation-*.json` beside it), and the archive must extend it (the
held-checkpoint check of verify.py, naming the file). `ledger-head.json`, when present, says how
far the ledger itself wrote: rows the archive holds beyond it were not written by the ledger,
and rows it wrote that are gone or rewritten show too, signed or not yet.

A directory that is missing or holds no checkpoint is an error, never a pass: an auditor who
points at the wrong place must not be told the archive agrees with it. Pure but for reading the
files; the archive side is in evidence.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.audit.evidence.checkpoint import Checkpoint
from services.audit.evidence.ledger_head import HEAD_FILE, Head, HeadRecord
from services.audit.evidence.proofs import checkpoint_from_json
from services.audit.evidence.rotation import Rotation, rotation_from_json

CHECKPOINT_FILE = re.compile(r"^checkpoint-(\d+)\.json$")
ROTATION_FILE = re.compile(r"^rotation-(\d+)-[0-9a-f]+\.json$")


class WitnessUnreadable(Exception):
    """The witness directory cannot be used: the message says why."""


@dataclass(frozen=True)
class WitnessDir:
    """One witness directory: its checkpoints (each with the file it came from) and, if there is
    one, the path of the ledger's head file (read after the archive, see `beyond_head`)."""

    path: Path
    checkpoints: dict[Checkpoint, Path]
    head_file: Path | None
    rotations: dict[Rotation, Path] = field(default_factory=dict)
    """The signing key's hand-overs (`rotation-*.json`, services/ledger/key_rotation.py)."""


def read_witness(path: Path) -> WitnessDir:
    """Every checkpoint file in `path`. WitnessUnreadable when the directory is missing, holds
    no checkpoint file, or a file is not a checkpoint (or not the one its name says)."""
    if not path.is_dir():
        raise WitnessUnreadable(f"the witness directory {path} does not exist")
    found: dict[Checkpoint, Path] = {}
    rotations: dict[Rotation, Path] = {}
    for file in sorted(path.iterdir()):
        if ROTATION_FILE.match(file.name):
            try:
                rotations[rotation_from_json(json.loads(file.read_text()))] = file
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
                raise WitnessUnreadable(f"{file} is not a key rotation: {exc!r}") from None
            continue
        match = CHECKPOINT_FILE.match(file.name)
        if match is None:
            continue
        try:
            doc = json.loads(file.read_text())
            cp = checkpoint_from_json(doc.get("payload", doc))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WitnessUnreadable(f"{file} is not a checkpoint: {exc!r}") from None
        if cp.head.tree_size != int(match.group(1)):
            raise WitnessUnreadable(
                f"{file} holds the checkpoint at tree size {cp.head.tree_size}, not the one its "
                "name says"
            )
        found[cp] = file
    if not found:
        raise WitnessUnreadable(
            f"the witness directory {path} holds no checkpoint file (checkpoint-*.json): "
            "nothing to compare the archive with"
        )
    head = path / HEAD_FILE
    return WitnessDir(path, found, head if head.exists() else None, rotations)


@dataclass(frozen=True)
class HeadFinding:
    """How the archive disagrees with the ledger's own head: a finding's kind, the position
    (1-based, in archive order) of the row to name, and what is wrong."""

    kind: str
    position: int
    detail: str


def candidates(record: HeadRecord) -> list[Head]:
    """The heads the ledger may have left: a pending one (a batch committing) and the last
    committed one."""
    return [h for h in (record.pending, record.committed) if h is not None]


def ledger_extent(record: HeadRecord, holds: Mapping[Head, bool]) -> Head | None:
    """The largest recorded head the archive still holds (None: it holds neither)."""
    return max((h for h in candidates(record) if holds[h]), key=lambda h: h.tree_size, default=None)


def beyond_head(
    record: HeadRecord,
    holds: Mapping[Head, bool],
    walked: int,
    rows_now: int,
    source: str,
    signed: int = 0,
) -> HeadFinding | None:
    """Compare the archive with the ledger's head file (read after the archive was walked, so
    that a ledger still running has recorded every row the walk saw).

    `holds[h]`: the archive's row number `h.tree_size` has `h`'s archive_seq and chain hash
    now. `walked`: rows verify read; `rows_now`: rows the archive holds now; `signed`: the
    size of the latest checkpoint signed by the trusted key. The ledger's rows end at the
    largest head that holds; rows the walk read beyond it were not written by the ledger. When
    no head holds, its rows are gone (fewer rows than it wrote) or rewritten.

    A head older than the latest signed checkpoint is a copy taken earlier (the ledger records
    its head before every commit, and signs only rows it wrote): the rows up to the checkpoint
    are vouched for by the signature, the ones after it cannot be judged from this file."""
    ours = ledger_extent(record, holds)
    if ours is None:
        head = record.committed
        if rows_now < head.tree_size:
            return HeadFinding(
                "missing",
                rows_now,
                f"the archive holds {rows_now} events but the ledger wrote {head.tree_size} "
                f"(its own head, {source}): events after this one were deleted",
            )
        return HeadFinding(
            "changed",
            head.tree_size,
            f"event number {head.tree_size} is no longer the one the ledger wrote there (its "
            f"own head, {source}, has archive_seq {head.archive_seq} and another chain hash): "
            "the archive was rewritten up to it",
        )
    if walked > ours.tree_size >= signed:
        return HeadFinding(
            "inserted",
            ours.tree_size + 1,
            f"not written by the ledger: its own head ({source}) is event number "
            f"{ours.tree_size}, archive_seq {ours.archive_seq}; this event and the "
            f"{walked - ours.tree_size - 1} after it were added to the archive by someone else",
        )
    return None
