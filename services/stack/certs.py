"""Certificates and credentials for a deployment that connects securely as shipped.

`opsledger stack certs` writes, into a directory that is never committed (``.local/secure`` for
the local secure stack, ``deploy/compose/secrets`` for compose):

- ``ca.pem``: a private certificate authority (its key, ``ca-key.pem``, stays beside it so that
  a later run can add certificates; it is not mounted into any container);
- ``kafka.pem``: the brokers' key and certificate chain (a PEM keystore, as Kafka reads it);
- ``postgres.crt`` / ``postgres.key``: PostgreSQL's certificate and key;
- ``issuer.crt`` / ``issuer.key``: the development issuer's, for the local secure stack;
- ``secrets.env``: a random password for every Kafka SCRAM user and PostgreSQL role.

Existing files are kept (a second run changes nothing), so passwords already formatted into
Kafka's storage or set in PostgreSQL stay valid.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_AUTH, CLIENT_AUTH = ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH
# Names the certificates are valid for: the compose services' host names and loopback.
DEFAULT_HOSTS = ("localhost", "127.0.0.1", "kafka", "kafka-2", "kafka-3", "postgres")
VALID_DAYS = 825  # the longest leaf lifetime common TLS clients accept

# The passwords secrets.env holds, by the name compose reads them under.
PASSWORD_NAMES = (
    "POSTGRES_PASSWORD",
    "PG_OWNER_PASSWORD",
    "PG_AGGREGATOR_PASSWORD",
    "PG_QUERY_PASSWORD",
    "PG_AUDITOR_PASSWORD",
    "PG_REGISTRAR_PASSWORD",
    "KAFKA_BROKER_SCRAM_PASSWORD",
    "KAFKA_INGEST_SCRAM_PASSWORD",
    "KAFKA_AGGREGATOR_SCRAM_PASSWORD",
    "KAFKA_ADMIN_SCRAM_PASSWORD",
)


@dataclass(frozen=True)
class Material:
    """Paths of what `generate` wrote, and the passwords."""

    dir: Path
    passwords: dict[str, str]

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def kafka_keystore(self) -> Path:
        return self.dir / "kafka.pem"

    @property
    def postgres_cert(self) -> Path:
        return self.dir / "postgres.crt"

    @property
    def postgres_key(self) -> Path:
        return self.dir / "postgres.key"

    @property
    def issuer_cert(self) -> Path:
        return self.dir / "issuer.crt"

    @property
    def issuer_key(self) -> Path:
        return self.dir / "issuer.key"

    @property
    def env_file(self) -> Path:
        return self.dir / "secrets.env"


def generate(
    directory: Path, hosts: Iterable[str] = DEFAULT_HOSTS, *, for_containers: bool = False
) -> Material:
    """Create whatever is missing under ``directory``; keep what exists.

    ``for_containers``: the brokers' keystore is made readable by the container's own account
    (the apache/kafka image runs as uid 1000, not the file's owner); the directory stays 0700,
    so no other account of the host can reach it. PostgreSQL's key stays 0600 (compose copies it
    into place as root), and the CA's key is never mounted.
    """
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    names = list(dict.fromkeys(hosts))
    ca_key_path, ca_path = directory / "ca-key.pem", directory / "ca.pem"
    if not (ca_key_path.exists() and ca_path.exists()):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        _write(ca_key_path, _key_pem(ca_key), private=True)
        _write(ca_path, _cert_pem(_ca_cert(ca_key)))
    ca_key_loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
    assert isinstance(ca_key_loaded, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate(ca_path.read_bytes())
    material = Material(directory, {})
    for cert_path, key_path, common_name in (
        (directory / "kafka.pem", None, "opsledger-kafka"),
        (material.postgres_cert, material.postgres_key, "opsledger-postgres"),
        (material.issuer_cert, material.issuer_key, "opsledger-issuer"),
    ):
        if cert_path.exists() and (key_path is None or key_path.exists()):
            continue
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _leaf_cert(key, ca_key_loaded, ca_cert, common_name, names)
        if key_path is None:  # Kafka's PEM keystore: key, then the chain, in one file
            _write(cert_path, _key_pem(key) + _cert_pem(cert) + _cert_pem(ca_cert), private=True)
            if for_containers:
                cert_path.chmod(0o644)
        else:
            _write(key_path, _key_pem(key), private=True)
            _write(cert_path, _cert_pem(cert) + _cert_pem(ca_cert))
    passwords = read_env(material.env_file) if material.env_file.exists() else {}
    missing = [name for name in PASSWORD_NAMES if not passwords.get(name)]
    if missing:
        # Hex: safe inside postgresql:// URLs, JAAS strings and --add-scram arguments.
        passwords.update({name: secrets.token_hex(24) for name in missing})
        lines = [f"{name}={passwords[name]}" for name in PASSWORD_NAMES]
        extra = [f"{k}={v}" for k, v in passwords.items() if k not in PASSWORD_NAMES]
        header = "# Generated by `opsledger stack certs`; never commit this file.\n"
        _write(material.env_file, (header + "\n".join(lines + extra) + "\n").encode(), True)
    return Material(directory, passwords)


def read_env(path: Path) -> dict[str, str]:
    """NAME=value lines (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


# -- internals ----------------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ca_cert(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "opsledger deployment CA")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )


def _leaf_cert(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    hosts: list[str],
) -> x509.Certificate:
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(minutes=5))
        .not_valid_after(_now() + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        # Server and client: a Kafka node also presents it to the controllers (mutual TLS).
        .add_extension(x509.ExtendedKeyUsage([SERVER_AUTH, CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)
