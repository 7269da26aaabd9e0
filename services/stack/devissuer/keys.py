"""The development issuer's key pair: created once in its directory, the private half 0600.

The private key is read by `opsledger token` and the test helpers, never by a service.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from services.common.auth import ROLES

ALGORITHM = "RS256"
PRIVATE_KEY = "signing-key.pem"
JWKS = "jwks.json"
RETIRED = "retired.json"  # public keys of rotated-out signing keys, each until its overlap ends
MAX_TTL_S = 24 * 3600  # a development token outlives no working day


@dataclass(frozen=True)
class SigningKey:
    """An RSA key pair and the ``kid`` its JWKS entry carries (a hash of the public key)."""

    private: rsa.RSAPrivateKey
    kid: str

    @classmethod
    def generate(cls) -> SigningKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(private, _kid(private))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, rsa.RSAPrivateKey):
            raise ValueError("the development signing key must be an RSA key")
        return cls(private, _kid(private))

    def pem(self) -> bytes:
        return self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def jwk(self) -> dict[str, Any]:
        """The public key as a JWK (what the issuer publishes)."""
        public: dict[str, Any] = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "use": "sig", "alg": ALGORITHM}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private, algorithm=ALGORITHM, headers={"kid": self.kid})


def _kid(private: rsa.RSAPrivateKey) -> str:
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:16]


def load_or_create(directory: Path) -> SigningKey:
    """The key in ``directory``, generated (with its JWKS beside it) on first use."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / PRIVATE_KEY
    if path.exists():
        key = SigningKey.from_pem(path.read_bytes())
    else:
        key = SigningKey.generate()
        partial = directory / f".{PRIVATE_KEY}.{os.getpid()}"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.pem())
        partial.replace(path)
    _write_jwks(directory, key)
    return key


def _write_jwks(directory: Path, key: SigningKey) -> None:
    """``jwks.json``: the signing key's public half (the issuer adds the retired ones)."""
    jwks = directory / JWKS
    text = orjson.dumps({"keys": [key.jwk()]}, option=orjson.OPT_INDENT_2)
    if not jwks.exists() or jwks.read_bytes() != text:
        partial = directory / f".{JWKS}.{os.getpid()}"
        partial.write_bytes(text)
        partial.replace(jwks)


def retired(directory: Path, now: float | None = None) -> list[dict[str, Any]]:
    """Public keys of earlier signing keys still inside their overlap (``until`` in the future).

    ``retired.json`` holds ``[{"jwk": {...}, "until": <unix time>}, ...]``; no private key.
    """
    path = directory / RETIRED
    try:
        entries = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return []
    moment = time.time() if now is None else now
    return [e for e in entries if isinstance(e, dict) and float(e.get("until", 0)) > moment]


def published(directory: Path, now: float | None = None) -> dict[str, Any]:
    """The JWKS the issuer serves: the signing key, then every retired key still in overlap."""
    current = orjson.loads((directory / JWKS).read_bytes())["keys"]
    return {"keys": [*current, *(e["jwk"] for e in retired(directory, now))]}


def rotate(directory: Path, overlap_s: float, now: float | None = None) -> tuple[str, str]:
    """A new key signs from now on; the old one stays published for ``overlap_s`` seconds, so
    tokens it signed keep verifying until then. Returns (old kid, new kid).

    The services need no restart: a token with the new ``kid`` makes their key cache re-read
    the JWKS, and the old key leaves their cache at its next refresh after the overlap.
    """
    if overlap_s < 0:
        raise ValueError("the overlap cannot be negative")
    old = load(directory)
    moment = time.time() if now is None else now
    keep = [e for e in retired(directory, moment) if e["jwk"].get("kid") != old.kid]
    keep.append({"jwk": old.jwk(), "until": moment + overlap_s})
    partial = directory / f".{RETIRED}.{os.getpid()}"
    partial.write_bytes(orjson.dumps(keep, option=orjson.OPT_INDENT_2))
    partial.replace(directory / RETIRED)
    new = SigningKey.generate()
    partial = directory / f".{PRIVATE_KEY}.{os.getpid()}"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(new.pem())
    partial.replace(directory / PRIVATE_KEY)  # tokens are signed with the new key from here
    _write_jwks(directory, new)
    return old.kid, new.kid


def load(directory: Path) -> SigningKey:
    """The existing key in ``directory``; FileNotFoundError before `opsledger stack up`."""
    return SigningKey.from_pem((directory / PRIVATE_KEY).read_bytes())


def claims_for(
    *,
    issuer: str,
    audience: str,
    role: str,
    operations: Sequence[str] = (),
    subject: str | None = None,
    ttl_s: int = 3600,
    now: float | None = None,
) -> dict[str, Any]:
    """The claims of a development token, in the shape the default claim mapping reads."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    if not 0 < ttl_s <= MAX_TTL_S:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL_S} seconds")
    issued = int(time.time() if now is None else now)
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject or f"{role}-{uuid.uuid4().hex[:8]}",
        "roles": [role],
        "operations": sorted(set(operations)),
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_s,
        "jti": uuid.uuid4().hex,
    }
