"""The ledger: archives every event exactly once and keeps the read models and money journal."""
