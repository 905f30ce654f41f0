"""Replay: run the matcher and the projections again over the archived (or topic) log and
compare with what the exchange holds, including the derived-table check `verify` ends with
(services/audit/README.md)."""
