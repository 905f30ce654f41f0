"""The pure parts of the gateway's limits: token buckets, the body limit's reading, and the
key organisation names are compared by."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest

from services.gateway.limits import BodyLimit, RateLimiter, Refused
from services.identity import name_key

pytestmark = pytest.mark.unit


def test_a_bucket_refills_at_its_rate_and_says_when_to_retry() -> None:
    now = [0.0]
    limiter = RateLimiter(
        reads_per_second=2, reads_burst=2, writes_per_second=0, writes_burst=1, clock=lambda: now[0]
    )
    who = uuid.uuid4()
    limiter.check(who, write=False)
    limiter.check(who, write=False)
    with pytest.raises(Refused) as refused:
        limiter.check(who, write=False)
    assert refused.value.status == 429 and refused.value.headers["Retry-After"] == "1"
    now[0] = 0.5  # one token back at 2/s
    limiter.check(who, write=False)
    for _ in range(100):  # a rate of 0: no limit
        limiter.check(who, write=True)


def test_a_streamed_body_is_not_read_beyond_the_limit() -> None:
    """The application asks for the whole body; the middleware stops after the chunk that
    passes the limit and answers 413, however much more the client would send."""
    handed: list[int] = []

    async def receive() -> dict[str, Any]:
        handed.append(1000)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while True:  # reads forever, as a body parser would until more_body is false
            try:
                await receive()
            except Exception:
                await send({"type": "http.response.start", "status": 400, "headers": []})
                await send({"type": "http.response.body", "body": b"bad"})
                return

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/v1/needs", "headers": []}
    asyncio.run(BodyLimit(app, max_bytes=4096)(scope, receive, send))
    assert sum(handed) == 5000, "the chunk that passed the limit was the last one read"
    assert sent[0]["status"] == 413 and len(sent) == 2
    assert json.loads(sent[1]["body"])["reason"] == "body_too_large"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("江东社区", "江东 社区"),
        ("江东社区", "江东社区\u200b"),
        ("江东社区", "\ufeff江东社区"),
        ("江东社区", "江东社区。"),
        ("ＪＤ社区", "jd社区"),
        ("Café", "Cafe\u0301"),
    ],
)
def test_names_that_read_the_same_have_the_same_key(a: str, b: str) -> None:
    assert name_key(a) == name_key(b)


@pytest.mark.parametrize(("a", "b"), [("江东社区", "江东社区居委会"), ("〇号社区", "零号社区")])
def test_different_names_keep_different_keys(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)
