"""The gateway with PostgreSQL gone or its disk full: 503 JSON with Retry-After on every path,
never a text/plain 500, and service again by itself once PostgreSQL is back.

Each test runs its own PostgreSQL server (the session's is shared with other tests, so it is
never stopped here)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from schemas.messages import OrgKind
from services.embedded.broker import EmbeddedBroker
from services.embedded.postgres import EmbeddedPostgres
from services.gateway.app import create_app
from services.platform.db import migrate
from services.platform.kafka import ensure_topics
from services.settings import Settings
from tests import factories as f
from tests.integration.conftest import org_token, wait_until

pytestmark = pytest.mark.integration

PROMPT = 8.0
"""An outage must be answered well before a client's 20 s timeout (acquire timeout is 5 s)."""


def assert_unavailable(r: httpx.Response, reason: str = "database_unavailable") -> None:
    assert r.status_code == 503, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["Retry-After"] == "5"
    assert r.json()["reason"] == reason, r.json()
    assert r.json()["detail"]


def gateway(broker: EmbeddedBroker, dsn: str, var_dir: Path) -> TestClient:
    ensure_topics(broker.bootstrap)
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
        DATABASE_URL=dsn,
        EXCHANGE_VAR_DIR=var_dir,
        EXCHANGE_DB_CONNECT_TIMEOUT_SECONDS=2,
    )
    return TestClient(create_app(settings))


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres.start(tmp_path / "pg" / "data")
    asyncio.run(migrate(server.url))
    yield server
    server.stop()


def test_postgresql_down_is_503_json_everywhere_and_the_gateway_recovers(
    broker: EmbeddedBroker, own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    token = org_token(own_postgres.url, OrgKind.COMMUNITY, "江东社区")
    community = {"Authorization": f"Bearer {token}"}
    with gateway(broker, own_postgres.url, tmp_path / "var") as client:
        assert (
            client.post("/v1/needs", json=f.volunteer_need(), headers=community).status_code == 202
        )
        assert client.get("/v1/needs", headers=community).status_code == 200
        with client.stream("GET", "/v1/events", headers=community) as stream:
            lines = stream.iter_lines()
            assert ": connected" in [next(lines), next(lines)]
            # When PostgreSQL stops (fast shutdown: sessions are ended)
            own_postgres.stop()
            # Then an open event stream says why it ends (its 200 was already sent)
            deadline = time.monotonic() + PROMPT
            seen = []
            for line in lines:
                seen.append(line)
                if line == "event: unavailable" or time.monotonic() > deadline:
                    break
            assert "event: unavailable" in seen, seen
        # And every kind of request is answered 503 JSON with Retry-After, promptly
        for method, path, body in [
            ("GET", "/v1/needs", None),
            ("GET", "/v1/funds", None),
            ("POST", "/v1/needs", f.volunteer_need(title="停库时")),
            ("POST", "/v1/volunteers", {"pseudonym": "赵大姐", "home": {"district": "鼓楼区"}}),
            ("GET", "/v1/events", None),
            ("GET", "/metrics", None),
        ]:
            started = time.monotonic()
            r = client.request(method, path, json=body, headers=community)
            assert_unavailable(r)
            assert time.monotonic() - started < PROMPT, (path, time.monotonic() - started)
        health = client.get("/healthz")
        assert_unavailable(health)
        assert health.json()["ok"] is False
        # When PostgreSQL is back, the gateway serves again without a restart
        EmbeddedPostgres.start(own_postgres.pgdata)
        wait_until(
            lambda: client.get("/v1/needs", headers=community).status_code == 200,
            30,
            "reads are served again",
        )
        again = client.post("/v1/needs", json=f.volunteer_need(title="恢复后"), headers=community)
        assert again.status_code == 202


def test_a_pool_with_no_free_connection_is_503_not_a_hang(
    broker: EmbeddedBroker, own_postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    token = org_token(own_postgres.url, OrgKind.COMMUNITY, "江东社区")
    community = {"Authorization": f"Bearer {token}"}
    settings_timeout = {"EXCHANGE_DB_ACQUIRE_TIMEOUT_SECONDS": "0.5"}
    os.environ.update(settings_timeout)
    try:
        client_cm = gateway(broker, own_postgres.url, tmp_path / "var")
    finally:
        for k in settings_timeout:
            os.environ.pop(k)
    with client_cm as client:
        pool = client.app.state.pool  # type: ignore[attr-defined]
        held = [client.portal.call(pool.acquire) for _ in range(pool.get_max_size())]  # type: ignore[union-attr]
        try:
            started = time.monotonic()
            assert_unavailable(client.get("/v1/needs", headers=community))
            assert time.monotonic() - started < 3
        finally:
            for conn in held:
                client.portal.call(pool.release, conn)  # type: ignore[union-attr]
        assert client.get("/v1/needs", headers=community).status_code == 200


@contextlib.contextmanager
def small_filesystem(path: Path, megabytes: int) -> Iterator[Path]:
    """A tmpfs of `megabytes` at `path` (needs root, which these machines give tests)."""
    path.mkdir(parents=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0777", "tmpfs", str(path)],
        check=True,
    )
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> Path:
    """Write zeros into `path`/filler until the filesystem is full."""
    filler = path / "filler"
    block = b"\0" * (1 << 20)
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError:
            pass
        with contextlib.suppress(OSError):  # the last few KiB
            while True:
                out.write(b"\0" * 4096)
    return filler


def test_a_full_disk_is_503_disk_full_and_low_disk_shows_in_healthz_first(
    broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """A real full disk: PostgreSQL's data directory on a small tmpfs, filled up."""
    with small_filesystem(tmp_path / "small", 160) as small:
        server = EmbeddedPostgres.start(small / "pg" / "data")
        try:
            asyncio.run(migrate(server.url))
            token = org_token(server.url, OrgKind.COMMUNITY, "江东社区")
            community = {"Authorization": f"Bearer {token}"}
            # disk paths are details: an auditor's token shows them (the public answer is brief)
            audit = org_token(server.url, OrgKind.AUDITOR, "审计组")
            auditor = {"Authorization": f"Bearer {audit}"}
            os.environ["EXCHANGE_MIN_FREE_DISK_MB"] = "64"
            try:
                client_cm = gateway(broker, server.url, tmp_path / "var")
            finally:
                os.environ.pop("EXCHANGE_MIN_FREE_DISK_MB")
            with client_cm as client:
                paths = client.get("/healthz", headers=auditor).json()["disk"]["paths"]
                assert paths[str((small / "pg" / "data").resolve())]["ok"] is True
                # When the disk fills up, /healthz says so before any write has failed
                filler = fill(small)
                health = client.get("/healthz")
                assert health.status_code == 503
                assert health.json()["reason"] == "low_disk", health.json()
                # And writes that need space are answered 503 disk_full (or, should
                # PostgreSQL stop over it, database_unavailable), never 500
                answers = []
                for n in range(200):
                    r = client.post(
                        "/v1/needs", json=f.volunteer_need(people_served=n + 1), headers=community
                    )
                    answers.append(r.status_code)
                    if r.status_code != 202:
                        break
                assert r.status_code == 503, answers
                assert r.json()["reason"] in ("disk_full", "database_unavailable"), r.json()
                assert r.headers["Retry-After"] == "5"
                assert 500 not in answers
                # When space is freed, writes succeed again
                filler.unlink()
                wait_until(
                    lambda: (
                        client.post(
                            "/v1/needs",
                            json=f.volunteer_need(title="腾出空间后"),
                            headers=community,
                        ).status_code
                        == 202
                    ),
                    30,
                    "writes succeed once space is freed",
                )
        finally:
            server.stop()
