"""Community Exchange services: gateway, intake (needs, donations, pledges), matcher, ledger."""

import os

os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
"""No pydantic plugins are used (none is installed on purpose); without this pydantic scans
every installed package's entry points when it builds the first model, about 10–20 ms of every
process's start and of an operator's 0.3-s one-shot budget (bench/one_shot.py). Set before any
model is built (every exchange process imports this package first); an operator who wants a
plugin sets the variable to something else."""

SERVICES = (
    "gateway",
    "intake-needs",
    "intake-donations",
    "intake-pledges",
    "matcher-router",
    "matcher-1",
    "matcher-2",
    "ledger",
)
"""Every service of the exchange, each its own process (`exchange services run NAME`);
`exchange up` runs them all and /healthz is green only when all are ready. `matcher-1` and
`matcher-2` are two workers of one consumer group sharing matcher.inputs' partitions; any
name `matcher-…` starts another."""

WORKER_GROUPS = {"matcher": "matcher-"}
"""Services that run as a group of interchangeable workers (one consumer group), by the name
prefix their members beat under: the group is up while one member is alive and ready, since
the others' partitions move to it."""


def group_of(service: str) -> str | None:
    """The worker group a service name belongs to (`matcher-2` → `matcher`), if any."""
    if service in SERVICES and service == "matcher-router":
        return None
    for group, prefix in WORKER_GROUPS.items():
        if service == group or service.startswith(prefix):
            return group
    return None
