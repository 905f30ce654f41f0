"""Make the compose cluster's TLS material (run by the `kafka-certs` one-shot, app image).

Writes into the first directory given (a volume only the brokers and the setup job mount):
- ca.crt             the CA
- broker.pem         the brokers' key and certificate (PEM keystore; SAN kafka-1..3), also
                     their client certificate on the broker and controller listeners, which
                     require it (mutual TLS, principal User:CN=kafka-broker, a super user)
and copies ca.crt into the second directory (a volume every service mounts: KAFKA_SSL_CAFILE),
so no service ever sees the brokers' private key. Nothing is rewritten once present, so
restarts keep the same CA.

Why Python and not keytool: the app image has `cryptography`, and Kafka reads PEM stores.
For production use your own CA (or Strimzi's, which does all of this itself).
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

BROKERS = ["kafka-1", "kafka-2", "kafka-3", "localhost"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def main(out: Path, public: Path) -> None:
    """Create ca.crt and broker.pem in `out` unless they exist; copy ca.crt to `public`."""
    if not ((out / "ca.crt").exists() and (out / "broker.pem").exists()):
        _make(out)
    public.mkdir(parents=True, exist_ok=True)
    (public / "ca.crt").write_bytes((out / "ca.crt").read_bytes())
    (public / "ca.crt").chmod(0o644)


def _make(out: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("community-exchange-kafka-ca"))
        .issuer_name(_name("community-exchange-kafka-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("kafka-broker"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(b) for b in BROKERS]), False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    out.mkdir(parents=True, exist_ok=True)
    (out / "broker.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(pem)
        + ca.public_bytes(pem)
    )
    # readable by the broker containers' own user (another uid than this job's); the volume
    # holding it is mounted by the brokers and the setup job only
    (out / "broker.pem").chmod(0o644)
    (out / "ca.crt").write_bytes(ca.public_bytes(pem))
    print(f"wrote {out}/ca.crt and {out}/broker.pem")


if __name__ == "__main__":
    main(
        Path(sys.argv[1] if len(sys.argv) > 1 else "/certs"),
        Path(sys.argv[2] if len(sys.argv) > 2 else "/ca"),
    )
