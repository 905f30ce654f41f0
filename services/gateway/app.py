"""The HTTP API (FastAPI): postings in, read models out, health and metrics for operators."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from aiokafka import AIOKafkaProducer
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from schemas.codec import json_type
from schemas.common import Role
from schemas.messages import MakePledge, Message, OpenFund, PostNeed, ReceiveDonation
from schemas.specs import DonationSpec, FundSpec, NeedSpec, PledgeSpec
from schemas.topics import BY_NAME, DONATIONS_POSTINGS, NEEDS_POSTINGS, PLEDGES_POSTINGS, TopicSpec
from services.gateway import health, reads
from services.gateway.postings import IdempotencyConflict, Postings, request_hash
from services.platform.db import Heartbeat, connect_pool, migrate
from services.settings import Settings

log = logging.getLogger(__name__)

OrgHeader = Annotated[
    str,
    Header(
        alias="X-Exchange-Org",
        min_length=1,
        max_length=80,
        description="Posting organisation's id (bearer tokens replace this header later).",
    ),
]
IdemHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Same key and body: the original answer, nothing new written.",
    ),
]


def _postings(request: Request) -> Postings:
    p: Postings = request.app.state.postings
    return p


PostingsDep = Annotated[Postings, Depends(_postings)]


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


def create_app(settings: Settings) -> FastAPI:
    """The gateway app; connections open in its lifespan, never at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(settings.require_database())
        pool = await connect_pool(settings.require_database(), max_size=10)
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
        app.state.postings = Postings(pool, producer)
        app.state.accepted = 0
        relay = asyncio.create_task(app.state.postings.relay(dict(BY_NAME)))
        try:
            yield
        finally:
            relay.cancel()
            await beat.stop()
            await producer.stop()
            await pool.close()

    app = FastAPI(
        title="Community Exchange 社区资源交换",
        version="0.1.0",
        description="Foundations post donations, communities post needs, volunteers pledge "
        "time; every posting becomes an event, matched in near real time and archived.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": validation_errors(exc)})

    async def _post(
        request: Request,
        svc: Postings,
        *,
        topic: TopicSpec,
        key: uuid.UUID,
        payload: Message,
        body: Any,
        org: str,
        role: Role,
        idem: str | None,
        ids: dict[str, str],
    ) -> JSONResponse:
        posting_id = uuid.uuid4()
        response = {
            "posting_id": str(posting_id),
            "status": "accepted",
            **ids,
            "links": {"posting": f"/v1/postings/{posting_id}"},
        }
        try:
            result = await svc.accept(
                topic=topic,
                key=key,
                payload=payload,
                org_id=org,
                role=role,
                idempotency_key=idem,
                fingerprint=request_hash(request.url.path, body.model_dump(mode="json")),
                response=response,
            )
        except IdempotencyConflict:
            raise HTTPException(
                409, "Idempotency-Key was already used with a different request"
            ) from None
        if not result.replayed:
            request.app.state.accepted += 1
        headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
        return JSONResponse(status_code=202, content=result.response, headers=headers)

    @app.post("/v1/needs", status_code=202, tags=["communities"])
    async def post_need(
        request: Request, body: NeedSpec, svc: PostingsDep, org: OrgHeader, idem: IdemHeader = None
    ) -> JSONResponse:
        """Post a need (volunteer hours, money or goods). Answered once it is durable."""
        need_id = uuid.uuid4()
        return await _post(
            request,
            svc,
            topic=NEEDS_POSTINGS,
            key=need_id,
            payload=PostNeed(need_id=need_id, need=body),
            body=body,
            org=org,
            role=Role.COMMUNITY,
            idem=idem,
            ids={"need_id": str(need_id)},
        )

    @app.post("/v1/funds", status_code=202, tags=["foundations"])
    async def open_fund(
        request: Request, body: FundSpec, svc: PostingsDep, org: OrgHeader, idem: IdemHeader = None
    ) -> JSONResponse:
        """Open a fund with its restrictions (categories, districts, period, cap per need)."""
        fund_id = uuid.uuid4()
        return await _post(
            request,
            svc,
            topic=DONATIONS_POSTINGS,
            key=fund_id,
            payload=OpenFund(fund_id=fund_id, fund=body),
            body=body,
            org=org,
            role=Role.FOUNDATION,
            idem=idem,
            ids={"fund_id": str(fund_id)},
        )

    @app.post("/v1/funds/{fund_id}/donations", status_code=202, tags=["foundations"])
    async def donate(
        request: Request,
        fund_id: uuid.UUID,
        body: DonationSpec,
        svc: PostingsDep,
        org: OrgHeader,
        idem: IdemHeader = None,
    ) -> JSONResponse:
        """Record a donation into a fund."""
        donation_id = uuid.uuid4()
        return await _post(
            request,
            svc,
            topic=DONATIONS_POSTINGS,
            key=fund_id,
            payload=ReceiveDonation(fund_id=fund_id, donation_id=donation_id, donation=body),
            body=body,
            org=org,
            role=Role.FOUNDATION,
            idem=idem,
            ids={"fund_id": str(fund_id), "donation_id": str(donation_id)},
        )

    @app.post("/v1/pledges", status_code=202, tags=["volunteers"])
    async def pledge(
        request: Request,
        body: PledgeSpec,
        svc: PostingsDep,
        org: OrgHeader,
        idem: IdemHeader = None,
    ) -> JSONResponse:
        """Pledge a volunteer's skills and availability (pseudonymous)."""
        volunteer_id = uuid.uuid4()
        return await _post(
            request,
            svc,
            topic=PLEDGES_POSTINGS,
            key=volunteer_id,
            payload=MakePledge(volunteer_id=volunteer_id, pledge=body),
            body=body,
            org=org,
            role=Role.SOCIAL_ORG,
            idem=idem,
            ids={"volunteer_id": str(volunteer_id)},
        )

    def _found(item: dict[str, Any] | None, what: str) -> dict[str, Any]:
        if item is None:
            raise HTTPException(
                404, f"no such {what} (yet: postings become visible once decided and archived)"
            )
        return item

    @app.get("/v1/postings/{posting_id}", tags=["read"])
    async def get_posting(request: Request, posting_id: uuid.UUID) -> dict[str, Any]:
        """Where a posting stands: pending, decided or refused (with the reason)."""
        return _found(await reads.posting(request.app.state.pool, posting_id), "posting")

    @app.get("/v1/needs/{need_id}", tags=["read"])
    async def get_need(request: Request, need_id: uuid.UUID) -> dict[str, Any]:
        """A need with its status and its matches."""
        return _found(await reads.need(request.app.state.pool, need_id), "need")

    @app.get("/v1/needs", tags=["read"])
    async def list_needs(
        request: Request,
        district: str | None = None,
        category: str | None = None,
        status: str | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        """Needs, most urgent first, filtered by district, category and status."""
        return await reads.needs(
            request.app.state.pool, district=district, category=category, status=status, limit=limit
        )

    @app.get("/v1/funds/{fund_id}", tags=["read"])
    async def get_fund(request: Request, fund_id: uuid.UUID) -> dict[str, Any]:
        """A fund with its balance (donated, available, reserved), derived from the journal."""
        return _found(await reads.fund(request.app.state.pool, fund_id), "fund")

    @app.get("/v1/pledges/{volunteer_id}", tags=["read"])
    async def get_pledge(request: Request, volunteer_id: uuid.UUID) -> dict[str, Any]:
        """A volunteer's pledge and proposed shifts."""
        return _found(await reads.pledge(request.app.state.pool, volunteer_id), "pledge")

    @app.get("/v1/matches", tags=["read"])
    async def list_matches(
        request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> list[dict[str, Any]]:
        """The most recent proposed matches."""
        return await reads.matches(request.app.state.pool, limit)

    @app.get("/healthz", tags=["operations"])
    async def healthz(request: Request) -> JSONResponse:
        """200 only when every service is running, ready and the archive is keeping up."""
        report = await health.check(
            request.app.state.pool, settings.stale_after_seconds, settings.archive_lag_seconds
        )
        return JSONResponse(status_code=200 if report["ok"] else 503, content=report)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> str:
        """Prometheus text format: postings, outbox and archive backlog, service readiness."""
        pool = request.app.state.pool
        report = await health.check(
            pool, settings.stale_after_seconds, settings.archive_lag_seconds
        )
        unpublished = await pool.fetchval(
            "SELECT count(*) FROM postings WHERE published_at IS NULL"
        )
        lines = [
            "# TYPE exchange_postings_accepted_total counter",
            f"exchange_postings_accepted_total {request.app.state.accepted}",
            "# TYPE exchange_outbox_unpublished gauge",
            f"exchange_outbox_unpublished {unpublished}",
            "# TYPE exchange_postings_not_archived gauge",
            f"exchange_postings_not_archived {report['postings_not_yet_archived']}",
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
        port=settings.http_port,
        log_config=None,
        access_log=False,
    )
