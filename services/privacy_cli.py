"""`exchange privacy`: forget a volunteer's, a need's or a donation's free text, and count what
was forgotten.

Forgetting deletes one key from PostgreSQL (`subject_keys`); the archive, the topics and the read
models keep their sealed bytes, now unreadable, so `exchange audit verify` and `exchange audit
replay` pass exactly as before. docs/privacy.md says what is and is not erasable.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import uuid
from typing import Any, Literal

from services.running import database_url
from services.settings import Settings


def add_privacy_commands(sub: Any) -> None:
    """Register `exchange privacy forget|status` on the top-level subparsers."""
    privacy = sub.add_parser(
        "privacy",
        help="forget a volunteer's, a need's or a donation's free text (PIPL erasure requests)",
    )
    psub = privacy.add_subparsers(dest="privacy_command", required=True, metavar="ACTION")
    forget = psub.add_parser(
        "forget",
        help="delete the key that seals a volunteer's pseudonym and reasons, a need's"
        " description, or a donation's donor label and note",
    )
    which = forget.add_mutually_exclusive_group(required=True)
    which.add_argument("--volunteer", type=uuid.UUID, metavar="ID")
    which.add_argument("--need", type=uuid.UUID, metavar="ID")
    which.add_argument("--donation", type=uuid.UUID, metavar="ID")
    forget.add_argument(
        "--by", default=None, help="who asked for or carried out the erasure (default: $USER)"
    )
    forget.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    forget.set_defaults(func=_cmd_forget)
    status = psub.add_parser(
        "status", help="how many subjects hold keys and how many were forgotten (no names)"
    )
    status.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    status.set_defaults(func=_cmd_status)


def _cmd_forget(settings: Settings, args: argparse.Namespace) -> int:
    from services.platform.db import connect
    from services.privacy import forget, plain_text_left, sealing_subject

    kind: Literal["volunteer", "need", "donation"] = (
        "volunteer" if args.volunteer else "need" if args.need else "donation"
    )
    subject_id: uuid.UUID = args.volunteer or args.need or args.donation
    by = args.by or getpass.getuser()

    async def run() -> tuple[Any, list[str]]:
        conn = await connect(database_url(settings, args.database_url))
        try:
            subject = await sealing_subject(conn, kind, subject_id)
            result = await forget(conn, subject, by)
            return result, await plain_text_left(conn, kind, subject_id)
        finally:
            await conn.close()

    result, plain = asyncio.run(run())
    if result.already:
        print(f"{result.subject} was already forgotten; nothing left to delete")
    elif result.had_key:
        print(f"forgot {result.subject}: its key is deleted")
    else:
        print(f"forgot {result.subject}: it had no key (nothing was ever sealed under it)")
    print(
        f"  {result.sealed_events} archived event(s) hold text sealed under it; that text can no"
        " longer be read anywhere (archive, topics, read models, reports)"
    )
    print("  nothing was published and the archive is unchanged: verify and replay still pass")
    for where in plain:
        print(f"  NOT ERASABLE: {where} (recorded before sealing; see docs/privacy.md)")
    return 0


def _cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from services.platform.db import connect
    from services.privacy import privacy_counts

    async def run() -> dict[str, int]:
        conn = await connect(database_url(settings, args.database_url))
        try:
            return await privacy_counts(conn)
        finally:
            await conn.close()

    print(json.dumps(asyncio.run(run()), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run: exchange privacy …")
