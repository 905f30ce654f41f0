"""The `exchange` console script ends a finished command with `os._exit` (services/console.py):
what it printed must still arrive whole, and its exit status must be the command's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services import SERVICES

EXCHANGE = str(Path(sys.executable).with_name("exchange"))


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL",)}
    env["EXCHANGE_VAR_DIR"] = str(tmp_path / "var")
    return subprocess.run([EXCHANGE, *args], env=env, capture_output=True, text=True, timeout=60)


def test_a_finished_command_prints_everything_and_exits_zero(tmp_path: Path) -> None:
    done = _run(["services", "list"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(SERVICES)


def test_a_refused_command_keeps_its_message_and_status(tmp_path: Path) -> None:
    done = _run(["orgs", "list"], tmp_path)  # no database and no running exchange
    assert done.returncode == 1
    assert "no exchange running" in done.stderr
    usage = _run(["orgs", "create", "--kind", "community"], tmp_path)
    assert usage.returncode == 2
    assert "--name" in usage.stderr
