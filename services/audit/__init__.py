"""The auditor's side of the exchange, in four rooms (services/audit/README.md): `evidence`
(hash chains, Merkle tree heads, signed checkpoints, and their reading), `reports`, `replay`,
and `entrypoints` (the `exchange audit` commands), each depending only on those before it."""
