"""What one caller may ask of the gateway: request rates, body sizes, open event streams, and
how far ahead `min_seq` may point.

Every refusal here is JSON `{"detail", "reason"}` with a status a client can act on: 429 with
`Retry-After` (too many requests or streams: slow down), 413 (the body is too large: nothing
was read beyond the limit), 409 (`min_seq` names a sequence the log has not reached and will
not reach soon: it was not given by this exchange).

Rates are token buckets per principal, in this process's memory. That is exact for the
embedded default (one gateway). With several gateways behind a load balancer each keeps its
own buckets, so a caller gets up to N times the budget; production either divides the budgets
by N (`EXCHANGE_RATE_*`), routes each token to one gateway (hash on the Authorization header),
or enforces the limit in front of the gateways (the load balancer or API gateway, keyed by
token). A shared counter in PostgreSQL would put a write on every read; it is not done here.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Refused(Exception):
    """A request refused by a limit: answered as JSON `{"detail", "reason"}`."""

    def __init__(
        self, status: int, reason: str, detail: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.headers = headers or {}


def refusal(status: int, reason: str, detail: str, headers: dict[str, str] | None = None) -> Any:
    """The JSON answer of a refusal."""
    return JSONResponse(
        status_code=status, content={"detail": detail, "reason": reason}, headers=headers
    )


def install(app: FastAPI) -> None:
    """Answer every `Refused` as JSON with its status, reason and headers."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Refused)
        answer: JSONResponse = refusal(exc.status, exc.reason, exc.detail, exc.headers)
        return answer

    app.add_exception_handler(Refused, handler)


# ---- request rates ----


@dataclass
class Bucket:
    """A token bucket: `burst` requests at once, refilled at `rate` a second."""

    rate: float
    burst: float
    tokens: float
    at: float

    def take(self, now: float) -> float:
        """Take one token; 0.0 when granted, else the seconds until one is there."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class RateLimiter:
    """Buckets per (principal, reads or writes). A rate of 0 turns that limit off."""

    reads_per_second: float
    reads_burst: int
    writes_per_second: float
    writes_burst: int
    clock: Callable[[], float] = time.monotonic
    buckets: dict[tuple[uuid.UUID, bool], Bucket] = field(default_factory=dict)

    MAX_BUCKETS = 100_000
    """Beyond this many, buckets that have refilled completely are dropped: a full bucket is
    the same as none, so nobody gains by it, and memory stays bounded."""

    def check(self, who: uuid.UUID, write: bool) -> None:
        """Count one request of `who`; raise `Refused` (429, `Retry-After`) over budget."""
        rate = self.writes_per_second if write else self.reads_per_second
        if rate <= 0:
            return
        burst = max(1, self.writes_burst if write else self.reads_burst)
        now = self.clock()
        key = (who, write)
        bucket = self.buckets.get(key)
        if bucket is None:
            if len(self.buckets) >= self.MAX_BUCKETS:
                self._forget_full(now)
            bucket = self.buckets[key] = Bucket(rate, burst, float(burst), now)
        wait = bucket.take(now)
        if wait > 0:
            kind = "writes" if write else "reads"
            raise Refused(
                429,
                "rate_limited",
                f"too many {kind} with this token ({rate:g}/s, bursts of {burst}); "
                "retry after the time given in Retry-After",
                {"Retry-After": str(max(1, math.ceil(wait)))},
            )

    def _forget_full(self, now: float) -> None:
        for key, b in list(self.buckets.items()):
            if b.tokens + (now - b.at) * b.rate >= b.burst:
                del self.buckets[key]


# ---- event streams ----


@dataclass
class StreamSlots:
    """Open event streams per principal, at most `limit` each (0: no limit). A stream holds a
    slot from the moment it is answered until its response ends, however it ends."""

    limit: int
    open: dict[uuid.UUID, int] = field(default_factory=dict)

    def take(self, who: uuid.UUID) -> None:
        """Hold one slot for `who`, or raise `Refused` (429) when all are held."""
        held = self.open.get(who, 0)
        if self.limit > 0 and held >= self.limit:
            raise Refused(
                429,
                "too_many_streams",
                f"this token already has {held} event streams open (at most {self.limit}); "
                "close one, or share one stream among your clients",
                {"Retry-After": "5"},
            )
        self.open[who] = held + 1

    def give_back(self, who: uuid.UUID) -> None:
        """Release a slot taken with `take`."""
        left = self.open.get(who, 0) - 1
        if left > 0:
            self.open[who] = left
        else:
            self.open.pop(who, None)


# ---- request bodies ----


class BodyLimit:
    """ASGI middleware: refuse a request body larger than `max_bytes` with 413 JSON, before
    reading more than that.

    A declared `Content-Length` over the limit is refused before anything is read. A body
    without one (chunked) is counted as it arrives; the moment it passes the limit, reading
    stops and the answer is 413, whatever the application was doing with the body (FastAPI
    would otherwise turn the interrupted read into a 400)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, wider: dict[tuple[str, ...], int] | None = None
    ) -> None:
        """`wider`: path prefixes that take larger bodies (the bulk import's files) → their
        limit."""
        self.app = app
        self.max_bytes = max_bytes
        self.wider = wider or {}

    def _limit(self, scope: Scope) -> int:
        path = str(scope.get("path", ""))
        for prefixes, limit in self.wider.items():
            if path.startswith(prefixes):
                return limit
        return self.max_bytes

    def _answer(self, limit: int) -> tuple[Message, Message]:
        body = json.dumps(
            {
                "detail": f"the request body is larger than {limit} bytes",
                "reason": "body_too_large",
            }
        ).encode()
        start = {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
        return start, {"type": "http.response.body", "body": body}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self._limit(scope) if scope["type"] == "http" else 0
        if limit <= 0:
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    for message in self._answer(limit):
                        await send(message)
                    return

        received = 0
        too_large = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:
                if not started:  # replace whatever the app answers (400, 422) with the 413
                    started = True
                    for m in self._answer(limit):
                        await send(m)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            for m in self._answer(limit):
                await send(m)


class BodyTooLarge(Exception):
    """Raised into the application when a body passes the limit (it stops reading)."""


# ---- read-your-writes ----


def check_min_seq(min_seq: int | None, head: int, margin: int) -> None:
    """Refuse (409) a `min_seq` further ahead of the archive's head than `margin`.

    A sequence this exchange gave (a posting's `decided_seq`, an `X-Exchange-Seq`) is never
    ahead of the database it came from; a little ahead is a replica or a gateway that has not
    caught up, worth a short wait. Far ahead it will not be reached in any wait, so the client
    hears so at once rather than after holding a connection for the whole wait."""
    if min_seq is not None and min_seq > head + margin:
        raise Refused(
            409,
            "min_seq_ahead",
            f"min_seq is ahead of the log: the archive is at {head}, and {min_seq} is more "
            f"than {margin} beyond it; pass a sequence this exchange gave you "
            "(decided_seq, X-Exchange-Seq)",
            {"X-Exchange-Seq": str(head)},
        )
