"""Signing keys: the ledger's (checkpoints) and a witness's (cosignatures), as signed-note keys.

A private key is kept as the signer-key string of the Go reference implementation of signed
notes, ``PRIVATE+KEY+<name>+<key id hex>+base64(type || 32-byte Ed25519 seed)``, so one line
of text holds it (a file in `.local/` in development, a secret in production); its public half
is a `VerifierKey` (``<name>+<key id hex>+base64(type || public key)``).
"""

from __future__ import annotations

import base64
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from services.tlog.settings import TlogSettings
from services.tlog.verifier import (
    COSIGNATURE_V1,
    ED25519,
    VerifierKey,
    cosigned_message,
    split_note,
)

_PREFIX = "PRIVATE+KEY+"


@dataclass(frozen=True)
class Signer:
    """An Ed25519 key with a name: signs notes (type 0x01) or cosigns them (type 0x04)."""

    name: str
    sig_type: int
    private: Ed25519PrivateKey

    @property
    def public(self) -> VerifierKey:
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return VerifierKey(self.name, self.sig_type, raw)

    @property
    def key_id(self) -> bytes:
        return self.public.key_id

    def secret(self) -> str:
        """The signer-key line (keep it secret)."""
        seed = self.private.private_bytes_raw()
        blob = base64.b64encode(bytes([self.sig_type]) + seed).decode()
        return f"{_PREFIX}{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def generate(cls, name: str, sig_type: int = ED25519) -> Signer:
        return cls(name, sig_type, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str) -> Signer:
        """Read a signer-key line; raise ValueError if malformed or its id does not match."""
        text = text.strip()
        if not text.startswith(_PREFIX):
            raise ValueError("not a signer key (expected PRIVATE+KEY+<name>+<id>+<key>)")
        name, _, rest = text[len(_PREFIX) :].partition("+")
        hex_id, _, blob = rest.partition("+")
        raw = base64.b64decode(blob, validate=True)
        if not name or len(raw) != 33 or raw[0] not in (ED25519, COSIGNATURE_V1):
            raise ValueError("not an Ed25519 signer key")
        signer = cls(name, raw[0], Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if signer.key_id.hex() != hex_id:
            raise ValueError(f"signer key id {hex_id} does not match its key")
        return signer

    def sign_note(self, text: str) -> str:
        """``text`` (ending in a newline) as a signed note with this key's signature."""
        if self.sig_type != ED25519:
            raise ValueError("a cosigning key cannot sign a note as its author")
        sig = self.private.sign(text.encode())
        return text + "\n" + self._line(sig)

    def cosign(self, note: str, timestamp: int) -> str:
        """The note with this witness's cosignature added (tlog-cosignature/v1)."""
        if self.sig_type != COSIGNATURE_V1:
            raise ValueError("only a cosigning key (type 0x04) cosigns")
        text, _ = split_note(note)
        sig = self.private.sign(cosigned_message(text, timestamp))
        return note + self._line(struct.pack(">Q", timestamp) + sig)

    def _line(self, signature: bytes) -> str:
        blob = base64.b64encode(self.key_id + signature)
        return f"\u2014 {self.name} {blob.decode()}\n"


def load_or_create(path: Path, name: str, sig_type: int) -> Signer:
    """The signer kept in ``path``, generated there (mode 0600) the first time.

    Written to a private temporary file and linked into place, so two processes starting at
    once agree on one key and neither reads half a file.
    """
    if path.exists():
        return Signer.parse(path.read_text())
    signer = Signer.generate(name, sig_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as f:
            f.write(signer.secret() + "\n")
        os.link(tmp, path)
    except FileExistsError:
        return Signer.parse(path.read_text())  # another process won the race: use its key
    finally:
        os.unlink(tmp)
    return signer


def ledger_signer(settings: TlogSettings) -> Signer:
    """The ledger's checkpoint key: the configured secret, else (development) the key file."""
    if settings.signing_key is not None:
        return Signer.parse(settings.signing_key.get_secret_value())
    return load_or_create(settings.key_file, settings.key_name, ED25519)
