"""Which failures mean "retry later" (503 JSON with Retry-After) and which stay a 500, with
the exception injected at the adapter boundary (the real full disk and the real outage are in
tests/integration/test_gateway_db_down.py)."""

from __future__ import annotations

import errno

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.gateway import faults
from services.platform.db import DatabaseUnavailable, unavailable_reason

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (asyncpg.DiskFullError("could not extend file: No space left on device"), "disk_full"),
        (OSError(errno.ENOSPC, "No space left on device"), "disk_full"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "database_unavailable"),
        (
            asyncpg.CannotConnectNowError("the database system is starting up"),
            "database_unavailable",
        ),
        (asyncpg.AdminShutdownError("terminating connection"), "database_unavailable"),
        (asyncpg.ConnectionDoesNotExistError("connection was closed"), "database_unavailable"),
        (asyncpg.TooManyConnectionsError("too many clients"), "database_unavailable"),
        (asyncpg.InterfaceError("connection is closed"), "database_unavailable"),
        (DatabaseUnavailable("database_unavailable", "no connection"), "database_unavailable"),
        (
            asyncpg.InternalClientError(
                "cannot switch to state 12; another operation (2) is in progress"
            ),
            "database_unavailable",
        ),
        (asyncpg.InternalClientError("something else inside the client"), None),
        (asyncpg.UniqueViolationError("duplicate key"), None),
        (asyncpg.UndefinedTableError("no such table"), None),
        (FileNotFoundError(errno.ENOENT, "missing"), None),
        (ValueError("a bug"), None),
    ],
)
def test_unavailable_reason(exc: BaseException, reason: str | None) -> None:
    assert unavailable_reason(exc) == reason


def app_raising(exc: Exception) -> TestClient:
    app = FastAPI()
    faults.install(app, retry_after=7)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


def test_a_full_disk_from_postgresql_is_503_json_with_retry_after() -> None:
    r = app_raising(asyncpg.DiskFullError("could not extend file")).get("/boom")
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "7"
    assert r.json()["reason"] == "disk_full"


def test_a_full_disk_of_our_own_is_503_too() -> None:
    r = app_raising(OSError(errno.ENOSPC, "No space left on device")).get("/boom")
    assert (r.status_code, r.json()["reason"]) == (503, "disk_full")


def test_a_bug_is_still_a_500() -> None:
    assert (
        app_raising(asyncpg.UniqueViolationError("duplicate key")).get("/boom").status_code == 500
    )
    assert app_raising(FileNotFoundError(errno.ENOENT, "x")).get("/boom").status_code == 500


def test_low_disk_is_reported(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path))
    assert faults.disk_report([path], 0)["ok"] is True
    report = faults.disk_report([path], 10**12)
    assert report["ok"] is False and report["paths"][str(path)]["ok"] is False
