"""Several `exchange audit` commands in one interpreter, for the fault suite's checks.

After every fault the suite runs the auditor's whole battery (key, verify, invariants,
sequences, replay). As separate processes that is five interpreter start-ups per fault, about
a minute of a suite that must stay within its budget; the commands themselves are the same
code an auditor runs (`services.cli.main`), each with its own settings and event loop.

Usage: `python -m tests.faults.audit_battery '[["key"], ["verify", "--no-derived"], …]'`;
prints one JSON line per command: its arguments, exit code, stdout and stderr. A `verify`
after `key` is given the public key `key` printed (`--public-key`), as an auditor pins the key
the operator published.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys

from services.cli import main


def run_one(args: list[str]) -> tuple[int, str, str]:
    """`exchange audit ARGS`: its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(["audit", *args])
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception as exc:  # a crash is a finding, reported like an exit code
            print(f"crashed: {exc!r}", file=sys.stderr)
            code = 99
    return code, out.getvalue(), err.getvalue()


def battery(commands: list[list[str]]) -> list[dict[str, object]]:
    """Run each command in order; `verify` pins the key an earlier `key` printed."""
    pinned: list[str] = []
    results = []
    for args in commands:
        if args[0] == "verify":
            args = [*args, *pinned]
        code, out, err = run_one(args)
        if args[0] == "key" and code == 0:
            pinned = ["--public-key", out.split()[1]]
        results.append({"args": args, "returncode": code, "stdout": out, "stderr": err})
    return results


if __name__ == "__main__":
    for result in battery(json.loads(sys.argv[1])):
        print(json.dumps(result, ensure_ascii=False))
