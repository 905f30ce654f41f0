"""The `exchange audit …` commands and the report data the auditor's HTTP endpoints serve: the
only audit modules that may import from every room (services/audit/README.md)."""
