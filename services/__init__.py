"""Community Exchange services: gateway, intake (needs, donations, pledges), matcher, ledger."""
