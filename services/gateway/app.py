"""The HTTP API (FastAPI): postings in, read models out, health and metrics for operators."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from schemas.codec import json_type
from schemas.topics import BY_NAME
from services.gateway import audit_reports_api, health, readapi, writes
from services.gateway.audit_api import router as audit_router
from services.gateway.outbox import OutboxWriter
from services.gateway.postings import Postings
from services.platform.db import Heartbeat, connect_pool, migrate
from services.settings import Settings

log = logging.getLogger(__name__)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Each failing field as path, reason and the JSON type of what was given (never the
    value itself, which may be personal data)."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        given = "missing" if err.get("type") == "missing" else json_type(err.get("input"))
        out.append(
            {
                "field": ".".join(loc) or "(body)",
                "reason": err.get("msg", "invalid"),
                "value_type": given,
            }
        )
    return out


OUTBOX_WRITERS = 2
"""Outbox batches in flight at once: one is written while the next gathers requests."""

POOL_SIZE = 10
"""PostgreSQL connections: the outbox writers', plus reads, ownership and token look-ups."""


def create_app(settings: Settings) -> FastAPI:
    """The gateway app; connections open in its lifespan, never at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(settings.require_database())
        pool = await connect_pool(settings.require_database(), max_size=POOL_SIZE)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.require_kafka(),
            acks="all",
            linger_ms=0,
            enable_idempotence=False,  # aiokafka's idempotent producer fails on Tansu
        )
        await producer.start()
        beat = Heartbeat(pool, "gateway", settings.heartbeat_seconds)
        beat.ready = True
        beat.start()
        app.state.pool = pool
        outbox = OutboxWriter(pool, writers=OUTBOX_WRITERS)
        outbox.start()
        app.state.postings = Postings(pool, producer, outbox)
        app.state.accepted = 0
        app.state.principals = {}
        relay = asyncio.create_task(app.state.postings.relay(dict(BY_NAME)))
        marks = asyncio.create_task(app.state.postings.mark_published())
        try:
            yield
        finally:
            relay.cancel()
            marks.cancel()
            await outbox.stop()
            await app.state.postings.flush_published()
            await beat.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="Community Exchange 社区资源交换",
        version="0.2.0",
        description="Foundations post donations, communities post needs, volunteers pledge "
        "time; every posting becomes an event, matched in near real time and archived. "
        "Authenticate with `Authorization: Bearer <token>` (tokens come from "
        "`exchange orgs create`, and from registering a volunteer).",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_errors(exc)})

    app.include_router(writes.router)
    app.include_router(readapi.router)
    app.include_router(audit_reports_api.router)
    app.include_router(audit_router)

    @app.get("/healthz", tags=["operations"])
    async def healthz(request: Request) -> JSONResponse:
        """200 only when every service is running, ready and the archive is keeping up."""
        report = await health.check(
            request.app.state.pool,
            settings.stale_after_seconds,
            settings.archive_lag_seconds,
            settings.decision_lag_seconds,
        )
        return JSONResponse(status_code=200 if report["ok"] else 503, content=report)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        """Prometheus text format: postings, outbox and archive backlog, service readiness."""
        pool = request.app.state.pool
        report = await health.check(
            pool,
            settings.stale_after_seconds,
            settings.archive_lag_seconds,
            settings.decision_lag_seconds,
        )
        unpublished = await pool.fetchval(
            "SELECT count(*) FROM postings WHERE published_at IS NULL"
        )
        archived = await pool.fetchval("SELECT coalesce(max(archive_seq), 0) FROM archive")
        lines = [
            "# TYPE exchange_postings_accepted_total counter",
            f"exchange_postings_accepted_total {request.app.state.accepted}",
            "# TYPE exchange_outbox_batches_total counter",
            f"exchange_outbox_batches_total {request.app.state.postings.outbox.batches_written}",
            "# TYPE exchange_outbox_rows_total counter",
            f"exchange_outbox_rows_total {request.app.state.postings.outbox.rows_written}",
            "# TYPE exchange_outbox_unpublished gauge",
            f"exchange_outbox_unpublished {unpublished}",
            "# TYPE exchange_postings_not_archived gauge",
            f"exchange_postings_not_archived {report['postings_not_yet_archived']}",
            "# TYPE exchange_postings_not_decided gauge",
            f"exchange_postings_not_decided {report['postings_not_yet_decided']}",
            "# TYPE exchange_archive_seq gauge",
            f"exchange_archive_seq {archived}",
            "# TYPE exchange_service_ready gauge",
        ]
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
