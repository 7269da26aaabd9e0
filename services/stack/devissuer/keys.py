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
    jwks = directory / JWKS
    text = orjson.dumps({"keys": [key.jwk()]}, option=orjson.OPT_INDENT_2)
    if not jwks.exists() or jwks.read_bytes() != text:
        jwks.write_bytes(text)
    return key


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
