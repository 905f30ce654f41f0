"""Checkpoints leave the database: each one the ledger records is also written to a witness
directory the operator chooses (ideally other storage, another host).

Someone who can rewrite the database can also delete its checkpoints and the archived
CheckpointRecorded events; a copy outside it is what `exchange audit verify --witness DIR`
compares the archive with. One file per checkpoint, `checkpoint-<tree size, 12 digits>.json`,
holding the CheckpointRecorded payload (the shape `--held` reads). Append-only: a file is written
to a temporary name and hard-linked into place, so an existing file is never overwritten, not
even by a different checkpoint of the same size (that is logged: it is evidence). A file is
written after its checkpoint row is stored; one missing (a crash in between, a full disk, a
witness directory that was unreachable) is written at the next checkpoint or start. Failing to
write never stops the ledger: the checkpoint is in the database and on the topic meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path

import asyncpg

from schemas.checkpoints import CheckpointRecorded
from services.audit.evidence.checkpoint import ORIGIN, Checkpoint, TreeHead
from services.audit.evidence.proofs import checkpoint_json
from services.settings import Settings

log = logging.getLogger(__name__)


def witness_path(settings: Settings) -> Path:
    """Where the witness files go: EXCHANGE_WITNESS_DIR, else `<var dir>/witness`."""
    return settings.witness_dir or settings.var_dir / "witness"


def checkpoint_file_name(tree_size: int) -> str:
    """`checkpoint-000000001000.json`: sorts by size, one name per size."""
    return f"checkpoint-{tree_size:012d}.json"


def checkpoint_document(cp: Checkpoint) -> str:
    """The file's content: the CheckpointRecorded payload as JSON (validated by its schema)."""
    payload = CheckpointRecorded(origin=ORIGIN, **checkpoint_json(cp))
    return json.dumps(payload.model_dump(mode="json"), indent=2) + "\n"


def write_checkpoint(directory: Path, cp: Checkpoint) -> bool:
    """Write `cp`'s file unless one exists; True when written. Never overwrites: a file of the
    same size holding another checkpoint is left as it is and logged."""
    directory.mkdir(parents=True, exist_ok=True)
    name = checkpoint_file_name(cp.head.tree_size)
    path = directory / name
    text = checkpoint_document(cp)
    tmp = directory / f".{name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as out:  # a stale one a crash left under this pid is replaced
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            if path.read_text() != text:
                log.error(
                    "witness file holds another checkpoint of the same size; left as it is",
                    extra={"path": str(path), "tree_size": cp.head.tree_size},
                )
            return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def _present(directory: Path) -> set[str]:
    try:
        return set(os.listdir(directory))
    except FileNotFoundError:
        return set()


class Witness:
    """Keeps the witness directory holding a file for every stored checkpoint."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.done_up_to = -1
        """Every checkpoint up to this tree size has its file (-1: not looked yet)."""

    async def catch_up(self, conn: asyncpg.Connection) -> int:
        """Write the file of every stored checkpoint above `done_up_to` that has none; return how
        many were written. At start that is every checkpoint (existing files are only listed,
        not read); afterwards the new ones. On failure it logs a warning and tries again next
        time."""
        rows = await conn.fetch(
            "SELECT tree_size, root_hash, chain_hash, signature, key_id FROM checkpoints"
            " WHERE tree_size > $1 ORDER BY tree_size",
            self.done_up_to,
        )
        if not rows:
            return 0
        try:
            return await asyncio.to_thread(self._write_missing, rows)
        except OSError as exc:
            log.warning(
                "checkpoint not written to the witness directory; will retry",
                extra={"witness_dir": str(self.directory), "error": repr(exc)},
            )
            return 0

    def _write_missing(self, rows: list[asyncpg.Record]) -> int:
        present = _present(self.directory)
        written = 0
        for r in rows:
            if checkpoint_file_name(r["tree_size"]) not in present:
                cp = Checkpoint(
                    TreeHead(r["tree_size"], r["root_hash"], r["chain_hash"]),
                    r["key_id"],
                    r["signature"],
                )
                written += write_checkpoint(self.directory, cp)
            self.done_up_to = r["tree_size"]
        if written:
            log.info(
                "checkpoints written to the witness directory",
                extra={"written": written, "witness_dir": str(self.directory)},
            )
        return written
