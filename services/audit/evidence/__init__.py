"""The evidence: hash chains, the Merkle tree, keys and their hand-overs, signed checkpoints,
consistency proofs, the witness files, and the checks that read them from the database and the
topics. It imports nothing from the other audit rooms, the ledger, the gateway or the web, so
that what it proves does not depend on the code that wrote the archive
(services/audit/README.md)."""
