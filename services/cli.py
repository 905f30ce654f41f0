"""The `exchange` command: run the whole exchange, one service, or operator tasks."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from services import SERVICES as SERVICE_NAMES
from services.composition import TOGETHER
from services.running import database_url, running_state
from services.settings import Settings

T = TypeVar("T")


def run_service(settings: Settings, name: str) -> None:
    """Run one service in the foreground, as production does (one process or container each).

    Started by `exchange up`, it also stops when that supervisor is gone (the portable half of
    `services.platform.lifeline`; on Linux the kernel kills it first)."""
    from services.platform.kafka import set_producer
    from services.platform.lifeline import watch_supervisor

    watch_supervisor()
    if name in TOGETHER:
        set_producer(None)  # each member stamps its own name on what it writes
        _run_together(settings, name)
        return
    set_producer(name)
    if name == "gateway":
        from services.gateway.app import main as gateway_main

        gateway_main(settings)
    elif name == "ledger":
        from services.ledger.service import main as ledger_main

        ledger_main(settings)
    elif name == "matcher-router":
        from services.matcher.processor import Router, clock_tick
        from services.platform.stream_app import run

        run(settings, name, [Router()], ticker=clock_tick)
    elif name == "matcher" or name.startswith("matcher-"):
        from services.matcher.worker import main as worker_main

        worker_main(settings, name)
    elif name.startswith("intake-"):
        from services.intake.processor import KINDS, IntakeProcessor
        from services.platform.stream_app import run

        run(settings, name, [IntakeProcessor(KINDS[name])])
    else:
        raise SystemExit(
            f"unknown service {name!r}; one of: {', '.join([*SERVICE_NAMES, *TOGETHER])}"
        )


def _run_together(settings: Settings, name: str) -> None:
    """The intake services and the router as one faust app (services/composition.py)."""
    from services.intake.processor import KINDS, IntakeProcessor
    from services.matcher.processor import Router, clock_tick
    from services.platform.processor import Processor
    from services.platform.stream_app import run

    processors: list[Processor] = [
        Router() if member == "matcher-router" else IntakeProcessor(KINDS[member])
        for member in TOGETHER[name]
    ]
    run(settings, name, processors, ticker=clock_tick, ticker_of="matcher-router")


def _cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from services.supervisor import up

    return up(settings, demo=args.demo)


def _cmd_service(settings: Settings, args: argparse.Namespace) -> int:
    run_service(settings, args.name)
    return 0


def _cmd_services_list(settings: Settings, args: argparse.Namespace) -> int:
    for name in SERVICE_NAMES:
        print(name)
    return 0


def _cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from services.platform.db import migrate

    dsn = database_url(settings)
    applied = asyncio.run(migrate(dsn))
    print("applied: " + ", ".join(applied) if applied else "database is up to date")
    return 0


def _cmd_restore(settings: Settings, args: argparse.Namespace) -> int:
    from services.platform.kafka import ensure_topics
    from services.restore import restore_if_empty

    state = {} if settings.kafka_bootstrap_servers else running_state(settings)
    bootstrap = settings.kafka_bootstrap_servers or state["kafka_bootstrap_servers"]
    dsn = settings.database_url or state["database_url"]
    ensure_topics(bootstrap)
    report = asyncio.run(restore_if_empty(bootstrap, dsn))
    print(
        "broker already holds the exchange's topics; nothing restored"
        if report.skipped
        else f"restored {report.archived} archived events and {report.postings} postings;"
        f" dropped {report.snapshots_dropped} matcher snapshots"
    )
    return 0


def _cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.topics import TOPICS

    if args.acls:
        return _print_acls(args.acls)
    for t in TOPICS:
        types = ", ".join(m.TYPE for m in t.messages)
        print(f"{t.name:20} key={t.key:13} partitions={t.partitions} writer={t.owner:17} {types}")
    return 0


def _print_acls(fmt: str) -> int:
    """The broker ACLs, generated from the registry and the processors (services.platform.access),
    as `kafka-acls.sh` lines or Strimzi KafkaUser documents, so deploy/ never lists them by hand."""
    from services.platform.access import acl_grants, kafka_acls_commands, strimzi_users

    grants = acl_grants()
    if fmt == "strimzi":  # JSON is YAML: one document per user, no YAML library needed
        for doc in strimzi_users(grants):
            print("---")
            print(json.dumps(doc, indent=2))
    else:
        print("#!/bin/sh")
        print("# Generated from the topic registry: exchange topics --acls kafka-acls > this file")
        print("# (deploy/kafka/acls.sh; tests/unit/test_deploy.py fails when it drifts).")
        print("# Each topic has exactly one writer principal. Needs BOOTSTRAP and ADMIN_CONFIG.")
        print("set -eu")
        print("\n".join(kafka_acls_commands(grants)))
    return 0


def _cmd_orgs_create(settings: Settings, args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from schemas.organisations import OrgKind
    from services import operator
    from services.identity import COMMAND_LINE, OrganisationExists

    async def create(conn: Any) -> tuple[object, str]:
        kind = OrgKind(args.kind.replace("-", "_"))
        return await operator.register(
            conn, COMMAND_LINE, kind, args.name, args.district, args.street
        )

    try:
        org_id, token = _on_database(settings, create)
    except ValidationError as exc:
        from schemas.codec import describe_errors  # the upcasters' models: only when needed

        print(f"refused: {describe_errors(exc)}", file=sys.stderr)
        return 2
    except OrganisationExists as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(f"created: {args.kind} {args.name} ({org_id})")
    print(f"token (shown once, keep it secret): {token}")
    return 0


def _cmd_orgs_list(settings: Settings, args: argparse.Namespace) -> int:
    from services import operator

    for r in _on_database(settings, operator.organisations):
        print(f"{r.org_id}  {r.kind:13} {r.status:9} {r.district} {r.street or ''}  {r.name}")
    return 0


def _cmd_orgs_act(settings: Settings, args: argparse.Namespace) -> int:
    """`orgs rotate-token`, `revoke`, `suspend`, `reinstate`: the operator's acts, through the
    same functions as `/v1/orgs` over HTTP (services/operator.py), each one transaction with
    its event on organisations.events."""
    from services import operator
    from services.identity import COMMAND_LINE, find_organisation

    async def act(conn: Any) -> tuple[str, str | int | bool]:
        org = await find_organisation(conn, args.org)
        label = f"{org['kind']} {org['name']} ({org['org_id']})"
        org_id = org["org_id"]
        match args.orgs_command:
            case "rotate-token":
                return label, await operator.rotate(conn, COMMAND_LINE, org_id)
            case "revoke":
                return label, await operator.revoke(conn, COMMAND_LINE, org_id)
            case command:
                suspend = command == "suspend"
                return label, await operator.set_suspended(conn, COMMAND_LINE, org_id, suspend)

    try:
        label, outcome = _on_database(settings, act)
    except LookupError as exc:
        print(f"refused: {exc.args[0]}", file=sys.stderr)
        return 2
    match args.orgs_command:
        case "rotate-token":
            print(f"rotated: {label}; every earlier token stopped working")
            print(f"token (shown once, keep it secret): {outcome}")
        case "revoke":
            print(f"revoked: {label}; {outcome} token(s) stopped working")
            print("to let it act again: exchange orgs rotate-token")
        case command:
            done = "suspended" if command == "suspend" else "reinstated"
            print(f"{done}: {label}" + ("" if outcome else f" (it was {done} already)"))
    return 0


def _on_database(settings: Settings, act: Callable[[Any], Awaitable[T]]) -> T:
    """Run one operator act on the exchange's database (migrated first), on its own
    connection, closed however the act ends."""
    from services.platform.db import connect, migrate

    async def run() -> T:
        dsn = database_url(settings)
        await migrate(dsn)
        conn = await connect(dsn)
        try:
            return await act(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _cmd_operators_create(settings: Settings, args: argparse.Namespace) -> int:
    """An operator's token, for `/v1/orgs` over HTTP; only whoever has the database makes one."""
    from services.identity import create_operator

    try:
        operator_id, token = _on_database(settings, lambda conn: create_operator(conn, args.name))
    except ValueError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(f"created: operator {args.name} ({operator_id})")
    print(f"token (shown once, keep it secret): {token}")
    return 0


def _cmd_operators_rotate(settings: Settings, args: argparse.Namespace) -> int:
    """A new token for an operator; every earlier one stops working at once."""
    from services.identity import rotate_operator_token

    try:
        operator_id, token = _on_database(
            settings, lambda conn: rotate_operator_token(conn, args.operator)
        )
    except LookupError as exc:
        print(f"refused: {exc.args[0]}", file=sys.stderr)
        return 2
    print(f"rotated: operator {operator_id}; every earlier token stopped working")
    print(f"token (shown once, keep it secret): {token}")
    return 0


def _cmd_schemas_export(settings: Settings, args: argparse.Namespace) -> int:
    from schemas.export import SchemaChanged, write

    try:
        written = write()
    except SchemaChanged as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    print("\n".join(f"wrote {p}" for p in written) or "schemas are up to date")
    return 0


def _cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """The gateway's public /healthz verdict, and the details behind it read from PostgreSQL
    and this machine (services with pids, backlog, disks): the public answer is kept brief,
    and the operator, who runs this command, has the database."""
    import asyncpg
    import httpx

    from services.gateway.faults import disk_report
    from services.gateway.health import check
    from services.platform.db import connect

    state = running_state(settings)
    try:
        r = httpx.get(f"{state['http_url']}/healthz", timeout=5)
        public, ok = r.json(), r.status_code == 200
    except (httpx.HTTPError, ValueError) as exc:
        public, ok = {"ok": False, "reason": f"gateway unreachable: {exc}"}, False

    async def details() -> dict[str, object]:
        conn = await connect(database_url(settings))
        try:
            report = await check(
                conn,
                settings.stale_after_seconds,
                settings.archive_lag_seconds,
                settings.decision_lag_seconds,
            )
            report["postings_unpublished"] = await conn.fetchval(
                "SELECT count(*) FROM postings WHERE published_at IS NULL"
            )
            return report
        finally:
            await conn.close()

    try:
        report: dict[str, object] = asyncio.run(details())
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        report = {"database": f"unreachable: {exc}"}
    report["disk"] = disk_report([settings.var_dir.resolve()], settings.min_free_disk_mb)
    print(json.dumps({"healthz": public, **report}, indent=2, ensure_ascii=False, default=str))
    return 0 if ok else 1


def _cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from services.demo.loader import load_demo

    state = running_state(settings)
    print(load_demo(args.url or state["http_url"], database_url(settings)))
    return 0


def parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command line; `exchange --help` lists every command with one line each. Given
    `argv`, only the command group it names is loaded (every group otherwise)."""
    p = argparse.ArgumentParser(
        prog="exchange",
        description="Community Exchange 社区资源交换: volunteers, donations and needs, "
        "matched in near real time.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser(
        "up",
        help="start the whole exchange (embedded broker and PostgreSQL "
        "unless KAFKA_BOOTSTRAP_SERVERS / DATABASE_URL are set)",
    )
    up.add_argument("--demo", action="store_true", help="load the Nanjing demo scenario")
    up.set_defaults(func=_cmd_up)

    services = sub.add_parser("services", help="run or list the individual services")
    ssub = services.add_subparsers(dest="services_command", required=True, metavar="ACTION")
    run = ssub.add_parser("run", help="run one service in the foreground")
    run.add_argument(
        "name",
        metavar="NAME",
        help=f"one of {', '.join(SERVICE_NAMES)}; any matcher-… name starts one more worker",
    )
    run.set_defaults(func=_cmd_service)
    ssub.add_parser("list", help="list the services").set_defaults(func=_cmd_services_list)

    db = sub.add_parser("db", help="database tasks")
    dsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    dsub.add_parser("migrate", help="apply pending schema migrations").set_defaults(
        func=_cmd_migrate
    )

    broker = sub.add_parser("broker", help="broker tasks")
    bsub = broker.add_subparsers(dest="broker_command", required=True, metavar="ACTION")
    bsub.add_parser("restore", help="refill an empty broker from PostgreSQL").set_defaults(
        func=_cmd_restore
    )

    orgs = sub.add_parser("orgs", help="organisations and their bearer tokens")
    osub = orgs.add_subparsers(dest="orgs_command", required=True, metavar="ACTION")
    create = osub.add_parser("create", help="register an organisation and print its token")
    create.add_argument(
        "--kind",
        required=True,
        choices=["foundation", "community", "street-office", "social-org", "auditor"],
    )
    create.add_argument("--name", required=True, help="e.g. 江东街道慈善基金会")
    create.add_argument("--district", required=True, help="e.g. 鼓楼区")
    create.add_argument("--street", help="e.g. 江东街道")
    create.set_defaults(func=_cmd_orgs_create)
    osub.add_parser("list", help="list organisations").set_defaults(func=_cmd_orgs_list)
    rotate = osub.add_parser(
        "rotate-token", help="issue an organisation a new token (printed once); old ones stop"
    )
    rotate.add_argument("org", metavar="NAME_OR_ID")
    rotate.set_defaults(func=_cmd_orgs_act)
    for action, what in (
        ("revoke", "stop every token of an organisation at once"),
        ("suspend", "refuse an organisation's every request (403) until reinstated"),
        ("reinstate", "let a suspended organisation act again"),
    ):
        act = osub.add_parser(action, help=what)
        act.add_argument("org", metavar="NAME_OR_ID")
        act.set_defaults(func=_cmd_orgs_act)

    operators = sub.add_parser("operators", help="the exchange's operators (/v1/orgs over HTTP)")
    opsub = operators.add_subparsers(dest="operators_command", required=True, metavar="ACTION")
    op_create = opsub.add_parser("create", help="register an operator and print its token")
    op_create.add_argument("name", metavar="NAME", help="who the operator is, e.g. 运营-王芳")
    op_create.set_defaults(func=_cmd_operators_create)
    op_rotate = opsub.add_parser(
        "rotate-token", help="give an operator a new token (every earlier one stops working)"
    )
    op_rotate.add_argument("operator", metavar="NAME_OR_ID")
    op_rotate.set_defaults(func=_cmd_operators_rotate)

    topics = sub.add_parser("topics", help="print the topic registry")
    topics.add_argument(
        "--acls",
        choices=("kafka-acls", "strimzi"),
        help="print the broker ACLs derived from it instead (one writer principal per topic)",
    )
    topics.set_defaults(func=_cmd_topics)
    schemas = sub.add_parser("schemas", help="the published event contract")
    schsub = schemas.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    schsub.add_parser(
        "export", help="write JSON Schema files and the AsyncAPI document"
    ).set_defaults(func=_cmd_schemas_export)
    sub.add_parser("status", help="health of the running exchange").set_defaults(func=_cmd_status)
    demo = sub.add_parser("demo", help="load the demo scenario into a running exchange")
    demo.add_argument("--url", help="gateway URL (default: the running exchange's)")
    demo.set_defaults(func=_cmd_demo)
    wanted = None if argv is None else _command_named(argv)
    for name, (module, register, summary) in _GROUPS.items():
        if wanted in (None, name):
            getattr(importlib.import_module(module), register)(sub)
        else:  # listed in --help, its module (and what that imports) left unloaded
            sub.add_parser(name, help=summary)
    return p


_GROUPS = {
    "audit": (
        "services.audit.entrypoints.cli",
        "add_commands",
        "tamper evidence: verify the archive, keys, proofs",
    ),
    "ledger": (
        "services.ledger.head_cli",
        "add_ledger_commands",
        "the ledger's own record of what it wrote",
    ),
    "import": (
        "services.importing.cli",
        "add_import_commands",
        "import organisations or volunteers from CSV or Excel",
    ),
    "privacy": (
        "services.privacy_cli",
        "add_privacy_commands",
        "forget a volunteer's, a need's or a donation's free text (PIPL erasure requests)",
    ),
}
"""Command groups whose modules are imported only when the group is the command given (or
for `--help`): a one-shot command such as `exchange orgs create` should not pay for the audit
tools' imports (issue #16: under 0.3 s)."""


def _command_named(argv: list[str]) -> str | None:
    """The command word of `argv` (its first word not starting with '-'), or None."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the `exchange` console script."""
    from services.settings import remember_for_clients

    argv = sys.argv[1:] if argv is None else argv
    args = parser(argv).parse_args(argv)
    settings = Settings()
    remember_for_clients(settings)
    func: Callable[[Settings, argparse.Namespace], int] = args.func
    sys.exit(func(settings, args))


if __name__ == "__main__":
    main()
