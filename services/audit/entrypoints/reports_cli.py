"""`exchange audit sequences | as-of | trail | disclosure`: the auditor's reports.

Exit codes: 0 done, 1 `sequences` found anomalies, 2 the report could not run (bad argument,
unknown id, no database)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from services.running import database_url
from services.settings import Settings


def add_report_commands(asub: Any) -> None:
    """Register the report actions on `exchange audit`'s subparsers."""
    seq = asub.add_parser("sequences", help="per-stream sequence gaps and reorderings")
    seq.add_argument("--rescan", action="store_true", help="recheck the whole archive instead")
    seq.add_argument("--json", action="store_true")
    seq.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    seq.set_defaults(func=_cmd_sequences)

    asof = asub.add_parser("as-of", help="balances, needs and volunteer minutes at a moment")
    asof.add_argument("time", help="ISO 8601 with offset, e.g. 2026-12-05T12:00:00+08:00")
    asof.add_argument("--json", action="store_true")
    asof.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    asof.set_defaults(func=_cmd_as_of)

    trail = asub.add_parser("trail", help="every step of a donation, fund, need or volunteer")
    which = trail.add_mutually_exclusive_group(required=True)
    for name in ("donation", "fund", "need", "volunteer"):
        which.add_argument(f"--{name}", type=uuid.UUID, metavar="ID")
    trail.add_argument("--json", action="store_true")
    trail.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    trail.set_defaults(func=_cmd_trail)

    disc = asub.add_parser("disclosure", help="a fund's quarterly public report (CSV and HTML)")
    disc.add_argument("--fund", type=uuid.UUID, required=True, metavar="ID")
    disc.add_argument("--quarter", required=True, help="e.g. 2026Q4 (China Standard Time)")
    disc.add_argument("--out", type=Path, default=Path("."), help="directory (default: .)")
    disc.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    disc.set_defaults(func=_cmd_disclosure)


def _run(settings: Settings, args: argparse.Namespace, body: Any) -> int:
    from services.platform.db import connect

    async def run() -> int:
        conn = await connect(database_url(settings, args.database_url))
        try:
            result: int = await body(conn)
            return result
        finally:
            await conn.close()

    from services.platform.gc_pause import paused_gc

    with paused_gc():  # a report folds the archive into books, then exits: see gc_pause
        return asyncio.run(run())


def _cmd_sequences(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.reports.api_data import sequence_report

    async def body(conn: Any) -> int:
        found = await sequence_report(conn, rescan=args.rescan)
        if args.json:
            print(json.dumps(found, ensure_ascii=False, indent=2))
        else:
            for a in found:
                print(
                    f"{a['kind'].upper():<6} {a['stream_id']} expected {a['expected_seq']}"
                    f" got {a['got_seq']} ({a['event_type']} {a['event_id']},"
                    f" archive_seq {a['archive_seq']}, {a['topic']})"
                )
            print(f"{len(found)} sequence anomalies" if found else "no sequence anomalies")
        return 1 if found else 0

    return _run(settings, args, body)


def _cmd_as_of(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.reports import asof
    from services.audit.reports.reading import load_books

    try:
        at = datetime.fromisoformat(args.time)
    except ValueError:
        print(f"not an ISO 8601 time: {args.time}", file=sys.stderr)
        return 2
    if at.tzinfo is None:
        print("give the time with its offset (e.g. +08:00)", file=sys.stderr)
        return 2

    async def body(conn: Any) -> int:
        books, _ = await load_books(conn, at)
        report = asof.as_of(books, at)
        out = json.dumps(report.to_json(), ensure_ascii=False, indent=2) + "\n"
        print(out if args.json else asof.render(report), end="")
        return 0

    return _run(settings, args, body)


def _cmd_trail(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.reports import trail
    from services.audit.reports.reading import load_books

    async def body(conn: Any) -> int:
        books, events = await load_books(conn)
        try:
            steps = trail.trail(
                books,
                events,
                donation=args.donation,
                fund=args.fund,
                need=args.need,
                volunteer=args.volunteer,
            )
        except KeyError as exc:
            print(f"unknown id: {exc}", file=sys.stderr)
            return 2
        if args.json:
            print(json.dumps(trail.to_json(steps), ensure_ascii=False, indent=2))
        else:
            print(trail.render(steps), end="")
        return 0

    return _run(settings, args, body)


def _cmd_disclosure(settings: Settings, args: argparse.Namespace) -> int:
    from services.audit.reports import disclosure as d
    from services.audit.reports.api_data import disclosure_report

    async def body(conn: Any) -> int:
        try:
            rep = await disclosure_report(conn, args.fund, args.quarter)
        except (KeyError, ValueError) as exc:
            print(f"cannot report: {exc}", file=sys.stderr)
            return 2
        args.out.mkdir(parents=True, exist_ok=True)
        stem = args.out / f"disclosure-{args.fund}-{args.quarter}"
        stem.with_suffix(".csv").write_bytes(d.to_csv(rep))
        stem.with_suffix(".html").write_text(d.to_html(rep), encoding="utf-8")
        print(stem.with_suffix(".csv"))
        print(stem.with_suffix(".html"))
        return 0

    return _run(settings, args, body)
