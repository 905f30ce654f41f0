"""`exchange import orgs|volunteers FILE`: the bulk import on the command line (docs/import.md).

Like `exchange orgs create`, it acts with the database: `import orgs` as the operator (the
same code path as `POST /v1/orgs`), `import volunteers --org` for the named community or social
organisation (what it could do itself with `POST /v1/imports/volunteers`). The postings wait
in the outbox; the running gateway's relay publishes them within seconds.

Exit status: 0 every row imported (or already there), 1 some rows refused (the good ones were
imported), 2 the file or the command was refused (nothing written).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TextIO

from services.importing import reasons
from services.importing.reasons import FileRefused, Problem
from services.importing.store import Report
from services.running import database_url
from services.settings import Settings


class Progress:
    """Rows written / rows to write on stderr: redrawn in place on a terminal, a line per
    batch otherwise (so a log shows how far a long import got)."""

    def __init__(self, label: str, out: TextIO | None = None) -> None:
        self.label = label
        self.out = out or sys.stderr
        self.live = self.out.isatty()
        self.started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        rate = done / max(time.monotonic() - self.started, 1e-9)
        text = f"{self.label}: {done}/{total} rows ({rate:,.0f}/s)"
        if self.live:
            self.out.write("\r" + text + ("\n" if done >= total else ""))
        else:
            self.out.write(text + "\n")
        self.out.flush()


def add_import_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`exchange import orgs|volunteers`."""
    imp = sub.add_parser("import", help="import organisations or volunteers from CSV or Excel")
    isub = imp.add_subparsers(dest="import_command", required=True, metavar="WHAT")
    orgs = isub.add_parser("orgs", help="register the organisations of a file (the operator)")
    vols = isub.add_parser(
        "volunteers", help="register the volunteers of a file, with their pledges, for --org"
    )
    vols.add_argument(
        "--org", required=True, metavar="NAME_OR_ID", help="the registering organisation"
    )
    for p in (orgs, vols):
        p.add_argument("file", type=Path, metavar="FILE", help=".csv (UTF-8 or GB18030) or .xlsx")
        p.add_argument("--dry-run", action="store_true", help="report every bad row; write nothing")
        p.add_argument(
            "--sign-ins",
            type=Path,
            metavar="OUT.csv",
            help="where the new sign-ins go (mode 0600, never over an existing file; "
            "default: sign-ins-<what>-<time>.csv here)",
        )
        p.add_argument(
            "--lang", default="zh-CN", choices=reasons.LANGUAGES, help="language of the report"
        )
        p.set_defaults(func=run_import)


def run_import(settings: Settings, args: argparse.Namespace) -> int:
    """Read the file, import it (or dry-run it), print the report, write the sign-ins."""
    from services.importing.signins import check_writable, sign_ins_csv, write_sign_ins

    what = args.import_command
    lang = args.lang
    out = args.sign_ins or Path(f"sign-ins-{what}-{datetime.now():%Y%m%d-%H%M%S}.csv")
    try:
        data = args.file.read_bytes()
        if not args.dry_run:
            check_writable(out)
        report = asyncio.run(_run(settings, args, data))
    except (OSError, LookupError, PermissionError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    except FileRefused as exc:
        _print_problems(exc.problems, lang)
        print(reasons.text("status.refused", lang), file=sys.stderr)
        return 2
    _print_problems(report.problems, lang)
    counts = report.counts()
    print(" · ".join(f"{k}: {v}" for k, v in counts.items() if v or k in ("created", "refused")))
    if report.sign_ins:
        write_sign_ins(out, sign_ins_csv(report))
        print(f"sign-ins of the {len(report.sign_ins)} new ones (shown once, keep it safe): {out}")
    return 1 if report.problems else 0


async def _run(settings: Settings, args: argparse.Namespace, data: bytes) -> Report:
    from schemas.common import Role
    from schemas.messages import OrgKind
    from services.identity import COMMAND_LINE, ROLE_OF_KIND, Principal, find_organisation
    from services.importing.reading import read_table
    from services.importing.rows import ZONE
    from services.importing.store import import_orgs, import_volunteers
    from services.platform.db import connect, connect_pool, migrate

    dsn = database_url(settings)
    table = read_table(data)
    await migrate(dsn)
    label = "import " + args.import_command
    if args.import_command == "orgs":
        conn = await connect(dsn)
        try:
            return await import_orgs(
                conn, COMMAND_LINE, table, dry_run=args.dry_run, progress=Progress(label)
            )
        finally:
            await conn.close()
    pool = await connect_pool(dsn, max_size=2)
    try:
        org = await find_organisation(pool, args.org)
        kind = OrgKind(org["kind"])
        registrar = Principal(org["org_id"], ROLE_OF_KIND[kind], kind, org["name"])
        if registrar.role not in (Role.COMMUNITY, Role.SOCIAL_ORG):
            raise LookupError(
                f"{org['name']} is a {kind.value}: only a community or social organisation"
                " registers volunteers"
            )
        if await pool.fetchval(
            "SELECT suspended_at IS NOT NULL FROM organisations WHERE org_id = $1", registrar.id
        ):
            raise LookupError(f"{org['name']} is suspended by the exchange's operator")
        return await import_volunteers(
            pool,
            registrar,
            table,
            dry_run=args.dry_run,
            today=datetime.now(ZONE).date(),
            progress=Progress(label),
        )
    finally:
        await pool.close()


def _print_problems(problems: list[Problem], lang: str) -> None:
    for p in problems:
        where = f"line {p.line}" if p.line else "file"
        column = f", {p.column}" if p.column else ""
        print(f"{where}{column}: {p.reason(lang)}", file=sys.stderr)
