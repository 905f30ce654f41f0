"""The auditor's reports over the archive: the books, as-of balances, trails, disclosures and
the business invariants. `reading.py` reads the archived events; everything else is pure.
Nothing here replays the log or parses arguments (services/audit/README.md)."""
