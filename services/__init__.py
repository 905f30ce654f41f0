"""Community Exchange services: gateway, intake (needs, donations, pledges), matcher, ledger."""

SERVICES = ("gateway", "intake-needs", "intake-donations", "intake-pledges", "matcher", "ledger")
"""Every service of the exchange, each its own process (`exchange services run NAME`);
`exchange up` runs them all and /healthz is green only when all are ready."""
