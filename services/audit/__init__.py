"""Tamper evidence for the archive: hash chains, Merkle tree heads, signed checkpoints."""
