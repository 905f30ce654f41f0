"""`exchange ledger adopt-head`: the operator's explicit way out when the ledger refuses to start
because the archive does not end where it left it (services/ledger/head.py).

It records the archive's newest row as the ledger's own head, so that the ledger starts again
and signs the archive as it stands. That is a decision only a person can take, after finding out
why the archive moved (docs/operations.md, "The ledger refuses to start"): rows another writer
added are better deleted; a database restored from a backup is adopted. The head file it replaces
is kept beside it, renamed, as evidence.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from services.running import database_url
from services.settings import Settings


def add_ledger_commands(sub: Any) -> None:
    """Register `exchange ledger adopt-head` and `rotate-key` on the top-level subparsers."""
    ledger = sub.add_parser("ledger", help="the ledger's own record of what it wrote")
    lsub = ledger.add_subparsers(dest="ledger_command", required=True, metavar="ACTION")
    adopt = lsub.add_parser(
        "adopt-head",
        help="record the archive's newest row as the ledger's head (after the ledger refused "
        "to start and you checked why); the old head file is kept, renamed",
    )
    adopt.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    adopt.set_defaults(func=_cmd_adopt_head)
    rotate = lsub.add_parser(
        "rotate-key",
        help="create a new signing key for the ledger to hand over to at its next start (the "
        "old key signs the hand-over); prints the new public key to publish",
    )
    rotate.set_defaults(func=_cmd_rotate_key)


def _cmd_rotate_key(settings: Settings, args: argparse.Namespace) -> int:
    """Write `<key file>.next` (mode 0600). The ledger, at its next start, signs the hand-over
    with both keys and moves the old key aside (services/ledger/key_rotation.py). Refused when
    there is no current key: only the key that signed the history can hand it over."""
    from services.audit.evidence.checkpoint import key_id, raw_public_key
    from services.audit.evidence.keys import fingerprint, key_path, load_key, load_or_create_key
    from services.ledger.key_rotation import next_key_path

    path = key_path(settings)
    if not path.exists():
        print(f"no signing key at {path}: nothing to hand over from", file=sys.stderr)
        return 2
    waiting = next_key_path(path)
    existed = waiting.exists()
    new = load_or_create_key(waiting).public_key()
    old = load_key(path).public_key()
    print(f"current key id {key_id(old).hex()}")
    print(f"{'already waiting' if existed else 'new key written'}: {waiting}")
    print(f"new public_key  {raw_public_key(new).hex()}")
    print(f"new fingerprint {fingerprint(new)}")
    print(
        "restart the ledger: it signs the hand-over with both keys, archives and publishes it, "
        "and signs from then on with the new key. Publish the new public key beside the old one."
    )
    return 0


def _cmd_adopt_head(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.evidence.ledger_head import HEAD_FILE
    from services.ledger.head import ForeignArchive, adopt
    from services.ledger.witness import witness_path
    from services.platform.db import connect

    dsn = database_url(settings, args.database_url)
    path = witness_path(settings) / HEAD_FILE

    async def run() -> int:
        conn = await connect(dsn)
        try:
            old, new = await adopt(conn, path)
        except ForeignArchive as exc:
            print(f"not adopted: {exc}")
            return 1
        finally:
            await conn.close()
        if old is not None:
            print(
                f"replaced: archive_seq {old.committed.archive_seq}, tree size "
                f"{old.committed.tree_size} (kept beside it as {path.name}.replaced-…)"
            )
        head = new.committed
        print(
            f"adopted: the ledger's head is now archive_seq {head.archive_seq}, tree size "
            f"{head.tree_size}, chain hash {head.chain_hash.hex()} ({path})"
        )
        return 0

    return asyncio.run(run())
