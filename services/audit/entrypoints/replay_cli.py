"""`exchange audit replay` and `exchange audit invariants`: the log read again, from scratch.

Exit codes as for the other audit commands: 0 equal / clean, 1 differences / violations (each
named with its events), 2 the check could not run (no database, no broker)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import asyncpg

from services.running import bootstrap_servers, database_url
from services.settings import Settings


def add_replay_commands(asub: Any) -> None:
    """Register `replay` and `invariants` on the `exchange audit` subparsers."""
    replay = asub.add_parser(
        "replay",
        help="rebuild every read model from the log and re-run the matcher; compare with live",
    )
    replay.add_argument(
        "--from", dest="source", choices=("archive", "kafka"), default="archive",
        help="read the log from the archive (default) or from the topics on the broker",
    )  # fmt: skip
    replay.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    replay.add_argument("--bootstrap-servers", help="default: KAFKA_BOOTSTRAP_SERVERS or running")
    replay.add_argument("--show", type=int, default=20, help="differences printed (default 20)")
    replay.add_argument(
        "--jobs", type=int, default=1,
        help="processes decoding the archive (default 1; the fold itself stays in order)",
    )  # fmt: skip
    replay.set_defaults(func=_cmd_replay)

    inv = asub.add_parser(
        "invariants",
        help="check the whole log for over-spent funds, over-filled needs, double-booked"
        " volunteers and broken earmarks",
    )
    inv.add_argument("--database-url", help="default: DATABASE_URL or the running exchange's")
    inv.add_argument("--show", type=int, default=50, help="violations printed (default 50)")
    inv.set_defaults(func=_cmd_invariants)


def _cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    try:
        dsn = database_url(settings, args.database_url)
        bootstrap = (
            bootstrap_servers(settings, args.bootstrap_servers) if args.source == "kafka" else ""
        )
    except SystemExit as exc:
        print(f"cannot replay: {exc}", file=sys.stderr)
        return 2
    from services.platform.gc_pause import paused_gc

    try:
        with paused_gc():  # one command that builds its result and exits: see gc_pause
            return asyncio.run(_replay(dsn, bootstrap, args.show, args.jobs))
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"cannot replay: {exc!r}", file=sys.stderr)
        return 2


async def _replay(dsn: str, bootstrap: str, show: int, jobs: int = 1) -> int:
    from schemas.topics import all_topic_names
    from services.audit.replay.rebuild import (
        Progress,
        archived_matcher_log,
        kafka_matcher_log,
        read_topics,
        replay_matcher,
        replay_projections,
    )
    from services.audit.replay.reference import replay_reference
    from services.platform.db import connect
    from services.platform.kafka import Record

    conn = await connect(dsn)
    try:
        records: list[Record] | None = None
        if bootstrap:
            print("reading the topics …", file=sys.stderr)
            records = await read_topics(bootstrap, all_topic_names())
        total = None if records else await conn.fetchval("SELECT count(*) FROM archive")
        bar = Progress("projections", len(records) if records else total)
        proj = await replay_projections(conn, records, bar, jobs)
        bar.close()
        if records is None:
            inputs, logged = await archived_matcher_log(conn)
        else:
            inputs, logged = kafka_matcher_log(records)
        refdata = await replay_reference(conn)
    finally:
        await conn.close()
    bar = Progress("matcher", sum(len(v) for v in inputs.values()))
    matcher = replay_matcher(inputs, logged, bar)
    bar.close()

    source = "the topics" if bootstrap else "the archive"
    rate = proj.events / max(proj.seconds, 1e-9)
    print(
        f"projections: {proj.events} events from {source}, {proj.projected} projected,"
        f" in {proj.seconds:.2f} s ({rate:,.0f} events/s)"
    )
    ignored = sorted(f"{t}.{c}" for t, cs in proj.ignored.items() for c in cs)
    print(f"  not compared (the ledger's wall clock): {', '.join(ignored) or 'nothing'}")
    for table, n in proj.differences.items():
        print(f"  {table}: {'equal' if not n else f'{n} rows differ'}")
    for d in proj.shown[:show]:
        print(f"  DIFFERENT {d}")
    print(
        f"matcher: {matcher.inputs} inputs on {matcher.partitions} partitions,"
        f" {matcher.decisions} decisions replayed in {matcher.seconds:.2f} s:"
        f" {'all equal byte for byte' if matcher.equal else f'{len(matcher.differences)} differ'}"
    )
    for m in matcher.differences[:show]:
        print(f"  DIFFERENT {m}")
    print(
        f"reference data: {refdata.terms} skills and categories on the log:"
        f" {'the table is their fold' if refdata.equal else f'{len(refdata.differences)} differ'}"
    )
    for r in refdata.differences[:show]:
        print(f"  DIFFERENT {r}")
    return 0 if proj.equal and matcher.equal and refdata.equal else 1


def _cmd_invariants(settings: Settings, args: argparse.Namespace) -> int:
    try:
        dsn = database_url(settings, args.database_url)
    except SystemExit as exc:
        print(f"cannot check: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        from services.audit.replay.rebuild import Progress, check_archive
        from services.platform.db import connect

        conn = await connect(dsn)
        try:
            bar = Progress("invariants", await conn.fetchval("SELECT count(*) FROM archive"))
            checker = await check_archive(conn, bar)
            bar.close()
        finally:
            await conn.close()
        # The end of the log is judged now: a refund's over-reservation is a violation only
        # once the matcher has had SETTLE to withdraw (services/audit/reports/invariants.py).
        now = datetime.now(UTC)
        violations = checker.verdict(now)
        print(f"invariants: {checker.events} events checked")
        for pending in checker.pending(now):
            print(f"PENDING {pending}: awaiting the matcher's withdrawals")
        for v in violations[: args.show]:
            print(f"VIOLATION {v}")
        if violations:
            print(f"{len(violations)} violations")
            return 1
        print("no fund over-spent, no need over-filled, no volunteer double-booked or over")
        print("their weekly limit, every money proposal within its fund's earmarks")
        return 0

    from services.platform.gc_pause import paused_gc

    try:
        with paused_gc():
            return asyncio.run(run())
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"cannot check: {exc!r}", file=sys.stderr)
        return 2
