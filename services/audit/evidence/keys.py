"""The exchange's Ed25519 signing key on disk: created once, readable only by its owner;
and the public key a verifier is told to trust, which never comes from beside the data.

The private key never leaves the ledger's host: it is a PKCS #8 PEM file, mode 0600, created
atomically (written to a temporary file, then hard-linked into place) so that two processes
starting at once end up with one key, never a half-written file. It is created only for an
archive that holds no checkpoint yet: once anything is signed, a missing or different key
stops the ledger (`ledger_key`) instead of silently starting a new history under a new key. A
key changes only by a hand-over the old key signs (services/ledger/key_rotation.py).

`exchange audit verify` trusts only a public key given from outside the var directory
(`anchored_public_key`): whoever can rewrite the archive can usually also replace the key file
beside it, so that file is no trust anchor.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from services.audit.evidence.checkpoint import key_id, public_key_from_hex
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


class KeyRefused(Exception):
    """The key cannot be used: the message says why and what to do."""


def ledger_key(
    path: Path, signed_by: bytes | None, handed: Mapping[bytes, bytes] | None = None
) -> Ed25519PrivateKey:
    """The ledger's signing key. `signed_by` is the key id of the archive's latest checkpoint
    (None when the archive has none); `handed`: old key id → new key id for every valid
    hand-over (services/ledger/key_rotation.py). A key is created only when nothing is signed
    yet; a missing key file is refused once checkpoints exist, and so is one holding a key that
    neither signed the latest checkpoint nor was handed over to by it: a new key would start a
    history nobody could tell from a forged one."""
    if signed_by is None:
        return load_or_create_key(path)
    if not path.exists():
        raise KeyRefused(
            f"no signing key at {path}, but the archive holds checkpoints signed by key id "
            f"{signed_by.hex()[:16]}…: restore that key file (the ledger creates a key only for "
            "an archive with no checkpoint)"
        )
    key = load_key(path)
    successors, current = {signed_by}, signed_by
    while current in (handed or {}) and (handed or {})[current] not in successors:
        current = (handed or {})[current]
        successors.add(current)
    if key_id(key.public_key()) not in successors:
        raise KeyRefused(
            f"the signing key at {path} (key id {key_id(key.public_key()).hex()[:16]}…) is not the "
            f"key that signed the archive's latest checkpoint (key id {signed_by.hex()[:16]}…): "
            "a key change is refused unless the old key hands over to the new one (`exchange "
            "ledger rotate-key`, docs/operations.md); restore the old key"
        )
    return key


def fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key (the key id), hex in groups of four, for people to compare."""
    digest = key_id(key).hex()
    return " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def _inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """A public key as PEM (SubjectPublicKeyInfo), 64 hex digits, or what `exchange audit key`
    prints (its `public_key` line)."""
    if "-----BEGIN PUBLIC KEY-----" in text:
        start = text.index("-----BEGIN PUBLIC KEY-----")
        key = load_pem_public_key(text[start:].encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    if "PRIVATE KEY" in text:
        raise ValueError("this is a private key file, not a published public key")
    for line in text.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "public_key":
            return public_key_from_hex(words[1])
    return public_key_from_hex(text)


def anchored_public_key(
    settings: Settings, given: str | None, given_file: str | None
) -> Ed25519PublicKey:
    """The public key `verify` trusts: `--public-key HEX`, else `--public-key-file PATH`, else
    EXCHANGE_AUDIT_PUBLIC_KEY. A file inside the var dir, or the ledger's own key file, is
    refused: it sits beside the data and whoever rewrites the one can replace the other.
    Raises KeyRefused with the reason."""
    try:
        if given:
            return public_key_from_hex(given)
        if given_file:
            path = Path(given_file)
            if _inside(path, settings.var_dir) or (
                path.exists() and key_path(settings).exists() and path.samefile(key_path(settings))
            ):
                raise KeyRefused(
                    f"{path} is beside the data (inside the var dir {settings.var_dir}, or the "
                    "ledger's own key file): it is no trust anchor. Pin the public key "
                    "published by `exchange audit key` in a file outside the var dir"
                )
            return public_key_from_text(path.read_text())
        if settings.audit_public_key:
            return public_key_from_hex(settings.audit_public_key)
    except (OSError, ValueError) as exc:
        raise KeyRefused(f"cannot read the trusted public key: {exc}") from None
    raise KeyRefused(
        "no trusted public key: give --public-key HEX, --public-key-file PATH (outside the var "
        "dir) or EXCHANGE_AUDIT_PUBLIC_KEY, as published by `exchange audit key`. The key "
        "file beside the data is not trusted: whoever rewrites the archive can replace it"
    )
