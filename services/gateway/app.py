"""The HTTP API (FastAPI): postings in, read models out, health and metrics for operators."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from schemas.codec import json_type
from schemas.common import Role
from schemas.topics import BY_NAME
from services import reference
from services.gateway import (
    audit_events_api,
    audit_reports_api,
    faults,
    health,
    imports_api,
    limits,
    openapi,
    operator_api,
    readapi,
    receipts_api,
    reference_api,
    writes,
)
from services.gateway.audit_api import router as audit_router
from services.gateway.limits import BodyLimit, RateLimiter, StreamSlots
from services.gateway.outbox import OutboxWriter
from services.gateway.postings import Postings
from services.gateway.relay import Relay
from services.gateway.tokens import TokenCache, principal_of
from services.platform.db import Heartbeat, connect_pool, migrate, unavailable_reason
from services.platform.dead_letters import dead_letters
from services.platform.kafka import client_security
from services.settings import Settings
from services.web import auditor_pages, public_pages
from services.web import imports as web_imports
from services.web import receipts as web_receipts
from services.web import routes as web_routes
from services.web.routes import STATIC as WEB_STATIC

log = logging.getLogger(__name__)

IMPORT_PATHS = ("/v1/imports/", "/imports/")
"""Where the bulk import's files are posted: bodies up to `max_import_bytes` (docs/import.md)."""


def _utf8(text: str) -> str:
    """`text` with any lone surrogate written as `\\udxxx`: a key or a message may quote the
    client's input, and JSON answers are UTF-8, which cannot carry one (the answer was a 500)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each failing field as path, reason and the JSON type of what was given (never the
    value itself, which may be personal data)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        given = "missing" if err.get("type") == "missing" else json_type(err.get("input"))
        out.append(
            {
                "field": _utf8(".".join(loc)) or "(body)",
                "reason": _utf8(err.get("msg", "invalid")),
                "value_type": given,
            }
        )
    return out


OUTBOX_WRITERS = 2
"""Outbox batches in flight at once: one is written while the next gathers requests."""

POOL_SIZE = 10
"""PostgreSQL connections: the outbox writers', plus reads, ownership and token look-ups."""

PUBLISH_TIMEOUT_MS = 10_000
"""How long the relay's producer waits for the broker before an attempt fails and is retried
(aiokafka's default is 40 s). Nothing waits on it but the relay: requests never do."""


async def _data_directory(pool: asyncpg.Pool) -> str | None:
    """PostgreSQL's data directory, when this role may read it (superusers and
    pg_read_all_settings), for the low-disk check."""
    try:
        value: str | None = await pool.fetchval("SELECT current_setting('data_directory')")
    except asyncpg.PostgresError:
        return None
    return value


def create_app(settings: Settings) -> FastAPI:
    """The gateway app; connections open in its lifespan, never at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = settings.require_database()
        bootstrap = settings.require_kafka()
        await migrate(dsn)
        pool = await connect_pool(
            dsn,
            max_size=POOL_SIZE,
            acquire_timeout=settings.db_acquire_timeout_seconds,
            connect_timeout=settings.db_connect_timeout_seconds,
        )
        data_dir = await _data_directory(pool)
        app.state.disk_paths = [settings.var_dir.resolve()] + (
            [p] if (p := faults.local_data_directory(dsn, data_dir)) else []
        )

        def make_producer() -> AIOKafkaProducer:
            return AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                acks="all",
                linger_ms=0,
                request_timeout_ms=PUBLISH_TIMEOUT_MS,
                enable_idempotence=False,  # aiokafka's idempotent producer fails on Tansu
                **client_security(settings, "aiokafka"),
            )

        beat = Heartbeat(pool, "gateway", settings.heartbeat_seconds)
        beat.ready = True
        beat.start()
        app.state.pool = pool
        outbox = OutboxWriter(pool, writers=OUTBOX_WRITERS)
        outbox.start()
        relay = Relay(
            pool,
            make_producer,
            dict(BY_NAME),
            behind_limit=settings.relay_behind_limit_seconds,
        )
        relay.start()
        app.state.postings = Postings(pool, outbox, relay)
        app.state.accepted = 0
        app.state.retry_after = settings.retry_after_seconds
        app.state.principals = TokenCache(dsn, connect_timeout=settings.db_connect_timeout_seconds)
        app.state.reference = reference_api.ReferenceCache(app.state.principals, pool)
        app.state.principals.start()
        async with pool.acquire() as conn:
            await reference.seed(conn)  # the built-in terms, on the log once (issue #16)
        await app.state.reference.terms()
        try:
            yield
        finally:
            await app.state.principals.stop()
            await outbox.stop()
            await relay.stop()
            await beat.stop()
            await pool.close()

    app = FastAPI(
        title="Community Exchange 社区资源交换",
        version="0.2.0",
        description="Foundations post donations, communities post needs, volunteers pledge "
        "time; every posting becomes an event, matched in near real time and archived. "
        "Authenticate with `Authorization: Bearer <token>` (tokens come from "
        "`exchange orgs create`, and from registering a volunteer).",
        lifespan=lifespan,
        responses=openapi.ERROR_RESPONSES,
    )
    openapi.install(app)

    faults.install(app, settings.retry_after_seconds)
    limits.install(app)
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        wider={IMPORT_PATHS: settings.max_import_bytes},
    )
    app.state.settings = settings
    app.state.rate = RateLimiter(
        reads_per_second=settings.rate_reads_per_second,
        reads_burst=settings.rate_reads_burst,
        writes_per_second=settings.rate_writes_per_second,
        writes_burst=settings.rate_writes_burst,
    )
    app.state.streams = StreamSlots(settings.max_streams_per_token)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_errors(exc)})

    app.include_router(writes.router)
    app.include_router(readapi.router)
    app.include_router(operator_api.router)  # the exchange's operator (issue #16)
    app.include_router(reference_api.router)  # skills and categories (issue #16)
    app.include_router(imports_api.router)  # bulk import of files (docs/import.md)
    # the web app (services/web): pages under /, its own assets under /static, all served here
    app.state.web_secret = secrets.token_urlsafe(32)
    app.include_router(web_routes.router)
    app.include_router(web_imports.router)  # the upload page, /imports (docs/import.md)
    app.include_router(receipts_api.router)  # donor receipts (docs/receipts.md)
    app.include_router(web_receipts.router)
    app.mount("/static", StaticFiles(directory=WEB_STATIC), name="static")
    app.include_router(audit_reports_api.router)
    app.include_router(audit_router)
    app.include_router(audit_events_api.router)
    app.include_router(auditor_pages.router)  # the auditor's pages, /audit
    app.include_router(public_pages.router)  # the public transparency site, /public

    async def for_auditor(request: Request) -> bool:
        """Whether the request carries an auditor's token: they see health in detail. Never a
        401 here (a load balancer's probe has no token), and no request budget is spent."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        try:
            who = await principal_of(
                request.app.state.principals, request.app.state.pool, token.strip()
            )
        except Exception as exc:
            if unavailable_reason(exc) is None:
                raise
            return False  # the database is down: the answer says so, in brief
        return who is not None and who.role is Role.AUDITOR

    @app.get("/healthz", tags=["operations"], responses=openapi.HEALTH)
    async def healthz(request: Request) -> JSONResponse:
        """200 only when every service is running, ready and the archive is keeping up, the
        database answers, and the var dir and PostgreSQL's data directory have at least
        `EXCHANGE_MIN_FREE_DISK_MB` free (so low disk shows here before writes fail).

        Anyone gets `{"ok", "reason"}` (reason: `database_unavailable`, `disk_full`,
        `low_disk`, `services_not_ready`, `archive_lagging`, `decisions_lagging`); an auditor's
        token also gets the details: each service with its pid, disks, the relay's backlog.
        Operators read the same details with `exchange status`."""
        disk = faults.disk_report(request.app.state.disk_paths, settings.min_free_disk_mb)
        headers: dict[str, str] = {}
        try:
            report = await health.check_for(request.app.state.pool, settings)
        except Exception as exc:
            reason = unavailable_reason(exc)
            if reason is None:
                raise
            report = {"ok": False, "reason": reason, "detail": faults.DETAILS[reason]}
            headers["Retry-After"] = str(settings.retry_after_seconds)
        report["disk"] = disk
        report["relay_pending"] = request.app.state.postings.relay.pending
        if not disk["ok"]:
            report["ok"] = False
            report.setdefault("reason", "low_disk")
        report["reason"] = health.public_reason(report)
        if not await for_auditor(request):
            report = {k: report[k] for k in ("ok", "reason", "detail") if k in report}
        return JSONResponse(
            status_code=200 if report["ok"] else 503, content=report, headers=headers
        )

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        """Prometheus text format: postings, outbox and archive backlog, how many services are
        ready. Counts only, for anyone; readiness per service (`exchange_service_ready`) needs
        an auditor's token (scrape with `authorization: {credentials_file: …}`)."""
        pool = request.app.state.pool
        report = await health.check_for(pool, settings)
        unpublished = await pool.fetchval(
            "SELECT count(*) FROM postings WHERE published_at IS NULL"
        )
        archived = await pool.fetchval("SELECT coalesce(max(archive_seq), 0) FROM archive")
        ready = sum(1 for s in report["services"].values() if s["ok"])
        lines = [
            "# TYPE exchange_postings_accepted_total counter",
            f"exchange_postings_accepted_total {request.app.state.accepted}",
            "# TYPE exchange_outbox_batches_total counter",
            f"exchange_outbox_batches_total {request.app.state.postings.outbox.batches_written}",
            "# TYPE exchange_outbox_rows_total counter",
            f"exchange_outbox_rows_total {request.app.state.postings.outbox.rows_written}",
            "# TYPE exchange_relay_pending gauge",
            f"exchange_relay_pending {request.app.state.postings.relay.pending}",
            "# TYPE exchange_relay_behind_seconds gauge",
            f"exchange_relay_behind_seconds {request.app.state.postings.relay.behind():.3f}",
            "# TYPE exchange_postings_refused_overloaded_total counter",
            "exchange_postings_refused_overloaded_total"
            f" {request.app.state.postings.refused_overloaded}",
            "# TYPE exchange_relay_publish_failures_total counter",
            f"exchange_relay_publish_failures_total {request.app.state.postings.relay.failures}",
            "# TYPE exchange_outbox_unpublished gauge",
            f"exchange_outbox_unpublished {unpublished}",
            "# TYPE exchange_postings_not_archived gauge",
            f"exchange_postings_not_archived {report['postings_not_yet_archived']}",
            "# TYPE exchange_postings_not_decided gauge",
            f"exchange_postings_not_decided {report['postings_not_yet_decided']}",
            "# TYPE exchange_archive_seq gauge",
            f"exchange_archive_seq {archived}",
            "# TYPE exchange_healthy gauge",
            f"exchange_healthy {int(report['ok'])}",
            "# TYPE exchange_services_ready gauge",
            f"exchange_services_ready {ready}",
            "# TYPE exchange_services_not_ready gauge",
            f"exchange_services_not_ready {len(report['services']) - ready}",
        ]
        lines += (await dead_letters(pool)).metrics()
        if await for_auditor(request):
            lines.append("# TYPE exchange_service_ready gauge")
            for name, s in report["services"].items():
                lines.append(f'exchange_service_ready{{service="{name}"}} {int(s["ok"])}')
        return "\n".join(lines) + "\n"

    return app


def main(settings: Settings) -> None:
    """Serve the gateway with uvicorn in the foreground."""
    import uvicorn

    from services.platform import logs

    logs.configure("gateway", settings.log_level, settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port or 8000,
        log_config=None,
        access_log=False,
        timeout_keep_alive=30,  # clients and load balancers reuse connections longer than 5 s
    )
