"""The audit package's rooms and which way they may lean on each other (services/audit/README.md).

The evidence proves what the archive holds, so it must not depend on the code that wrote the
archive (the ledger) or on anything that reads its results (reports, replay, the commands). The
imports are read from the source (every `import`, including those inside functions and under
TYPE_CHECKING), so a lazy import cannot slip past."""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
AUDIT = "services.audit"
ROOMS = ("evidence", "reports", "replay", "entrypoints")

EVIDENCE_MAY_USE = ("services.audit.evidence", "services.platform", "services.settings")
"""Everything the evidence may import from services/ (schemas/ and libraries are below it)."""

ENTRYPOINT_IMPORTERS = {"services.cli"}
"""Outside the entrypoints, the only module that may import them: the `exchange` command. (The
report data the command line and the HTTP reports share lives in reports/api_data.py.)"""


def module_of(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_of(p): p for p in sorted((ROOT / "services").rglob("*.py"))}


def imports_of(module: str) -> set[str]:
    """The services/ modules `module` imports: `from a import b` is `a.b` when that is a module."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                found.add(name if name in MODULES else base)
    return {m for m in found if m in MODULES}


GRAPH = {m: imports_of(m) for m in MODULES}


def room(name: str) -> list[str]:
    return [m for m in MODULES if m == f"{AUDIT}.{name}" or m.startswith(f"{AUDIT}.{name}.")]


def within(module: str, prefixes: Iterable[str]) -> bool:
    return any(module == p or module.startswith(f"{p}.") for p in prefixes)


def offending(modules: list[str], forbidden: Iterable[str]) -> list[str]:
    prefixes = list(forbidden)
    return sorted(f"{m} imports {i}" for m in modules for i in GRAPH[m] if within(i, prefixes))


def test_every_audit_module_lives_in_one_of_the_rooms() -> None:
    """Given services/audit, when listing its modules, then each is in a room (none loose)."""
    loose = [m for m in MODULES if within(m, [AUDIT]) and m != AUDIT]
    loose = [m for m in loose if not within(m, [f"{AUDIT}.{r}" for r in ROOMS])]
    assert loose == []
    assert all(len(room(r)) > 1 for r in ROOMS), "a room is empty: the walk found nothing"


def test_the_evidence_depends_on_nothing_above_it() -> None:
    """Given the evidence, when reading its imports from services/, then they are the evidence,
    the platform's adapters and the settings only: no ledger, gateway, web, nor other room."""
    outside = sorted(
        f"{m} imports {i}"
        for m in room("evidence")
        for i in GRAPH[m]
        if not within(i, EVIDENCE_MAY_USE)
    )
    assert outside == []


def test_reports_and_replay_do_not_reach_up() -> None:
    """Given the reports and the replay, then neither imports the commands, the gateway or the
    web, and the reports (below replay) do not import replay either."""
    above = [f"{AUDIT}.entrypoints", "services.cli", "services.gateway", "services.web"]
    assert offending(room("reports"), [*above, f"{AUDIT}.replay"]) == []
    assert offending(room("replay"), above) == []


def test_only_the_command_and_the_http_glue_import_the_entrypoints() -> None:
    """Given every module outside the entrypoints, then only the `exchange` command and the
    auditor's HTTP reports import them."""
    importers = {
        m
        for m, imported in GRAPH.items()
        if not within(m, [f"{AUDIT}.entrypoints"])
        and any(within(i, [f"{AUDIT}.entrypoints"]) for i in imported)
    }
    assert importers <= ENTRYPOINT_IMPORTERS


def test_the_ledger_depends_on_the_evidence_only() -> None:
    """Given the ledger, then what it imports from services/audit is the evidence: the ledger
    writes what the evidence reads, never the reverse."""
    ledger = [m for m in MODULES if within(m, ["services.ledger"])]
    used = offending(ledger, [AUDIT])
    assert [u for u in used if not u.split(" imports ")[1].startswith(f"{AUDIT}.evidence")] == []


def cycle_through(start: str, among: set[str]) -> list[str] | None:
    """An import path from `start` back to itself through `among`, if there is one."""
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        here, path = stack.pop()
        for nxt in GRAPH[here] & among:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_no_import_cycle_between_the_exchange_command_and_the_audit() -> None:
    """Given services/cli.py, services/running.py and every audit module, then no import path
    (lazy ones included) leads from any of them back to itself; in particular the audit commands
    find the running exchange in services/running.py, not in services/cli.py."""
    among = {"services.cli", "services.running", *(m for m in MODULES if within(m, [AUDIT]))}
    cycles = [c for m in sorted(among) if (c := cycle_through(m, among)) is not None]
    assert cycles == []
    assert not any("services.cli" in GRAPH[m] for m in among - {"services.cli"})
