"""What the gateway answers when it cannot serve for now: 503 JSON with `Retry-After`.

A database that is down, a pool with no free connection, a full disk: none of them is a bug,
and none of them wrote anything the client was told about (a posting is acknowledged only
after its commit). Clients must be able to tell "retry later" from "something is broken", so
these answer 503 with a machine-readable reason, never a text/plain 500. Everything else still
is a 500. Low disk is also reported by /healthz before writes start failing (`disk_report`).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.platform.db import unavailable_reason

log = logging.getLogger(__name__)

DETAILS = {
    "database_unavailable": "the database is unreachable or busy; nothing was written, retry later",
    "disk_full": "the database has no disk space left; nothing was written, retry later",
}


def unavailable(reason: str, retry_after: int) -> JSONResponse:
    """The 503 answer for `reason`."""
    return JSONResponse(
        status_code=503,
        content={"detail": DETAILS.get(reason, "temporarily unavailable"), "reason": reason},
        headers={"Retry-After": str(retry_after)},
    )


def install(app: FastAPI, retry_after: int) -> None:
    """Answer 503 for every exception `unavailable_reason` recognises, on every route
    (dependencies included: the token look-up is the first query of most requests)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        reason = unavailable_reason(exc)
        if reason is None:
            raise exc  # a real error: the server's 500, as before
        log.warning(
            "answered 503",
            extra={"reason": reason, "path": request.url.path, "error": repr(exc)},
        )
        return unavailable(reason, retry_after)

    for kind in (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(kind, handler)


def local_data_directory(dsn: str, data_directory: str | None) -> Path | None:
    """PostgreSQL's data directory when the server runs on this machine (a Unix socket or a
    loopback address), else None: a path on another host says nothing about this one's disks."""
    if not data_directory:
        return None
    parts = urlsplit(dsn)
    hosts = [parts.hostname or "", *parse_qs(parts.query).get("host", [])]
    local = any(h in ("", "localhost", "127.0.0.1", "::1") or h.startswith("/") for h in hosts)
    path = Path(data_directory)
    return path if local and path.exists() else None


def disk_report(paths: list[Path], min_free_mb: int) -> dict[str, Any]:
    """Free space of each path's filesystem; `ok` false when any has less than `min_free_mb`."""
    report: dict[str, Any] = {"ok": True, "min_free_mb": min_free_mb, "paths": {}}
    for path in paths:
        try:
            free_mb = shutil.disk_usage(path).free // (1024 * 1024)
        except OSError as exc:  # not there (yet): nothing to measure, nothing to fail on
            report["paths"][str(path)] = {"ok": True, "error": repr(exc)}
            continue
        ok = free_mb >= min_free_mb
        report["paths"][str(path)] = {"ok": ok, "free_mb": free_mb}
        report["ok"] = report["ok"] and ok
    return report
