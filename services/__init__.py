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
