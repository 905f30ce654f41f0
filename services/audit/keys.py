"""The exchange's Ed25519 signing key on disk: created once, readable only by its owner.

The private key never leaves the ledger's host: it is a PKCS #8 PEM file, mode 0600, created
atomically (written to a temporary file, then hard-linked into place) so that two processes
starting at once end up with one key, never a half-written file.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from services.settings import Settings


def key_path(settings: Settings) -> Path:
    """Where the signing key lives: EXCHANGE_AUDIT_KEY_PATH, else under the var dir."""
    return settings.audit_key_path or settings.var_dir / "keys" / "ledger-ed25519.pem"


def load_key(path: Path) -> Ed25519PrivateKey:
    """The signing key stored at `path`; a clear error when there is none."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise SystemExit(
            f"no signing key at {path} (the ledger creates it at first start)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SystemExit(f"{path} does not hold an Ed25519 private key")
    return key


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key at `path`, generating it (mode 0600) when the file does not exist yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(pem)
                out.flush()
                os.fsync(out.fileno())
            with contextlib.suppress(FileExistsError):  # another process won: use its key
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    return load_key(path)
