"""Community Exchange services: gateway, intake (needs, donations, pledges), matcher, ledger."""

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
