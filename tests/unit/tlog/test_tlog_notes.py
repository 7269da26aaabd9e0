"""Signed notes, checkpoints and cosignatures: the reference vector, then our own keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.tlog.keys import Signer, load_or_create
from services.tlog.verifier import (
    COSIGNATURE_V1,
    Checkpoint,
    VerificationError,
    VerifierKey,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    verify_cosignature,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "signed_note.json").read_text())


@pytest.mark.parametrize("v", VECTORS["ed25519"])
def test_reference_note_verifies_and_our_signer_reproduces_it(v: dict[str, str]) -> None:
    key = VerifierKey.parse(v["verifier_key"])
    assert str(key) == v["verifier_key"]
    assert open_note(v["note"], key) == v["text"]
    signer = Signer.parse(v["signer_key"])
    assert str(signer.public) == v["verifier_key"]
    assert signer.secret() == v["signer_key"]
    assert signer.sign_note(v["text"]) == v["note"]  # Ed25519 is deterministic


def test_a_changed_text_or_another_key_is_refused() -> None:
    v = VECTORS["ed25519"][0]
    key = VerifierKey.parse(v["verifier_key"])
    with pytest.raises(VerificationError, match="does not verify"):
        open_note(v["note"].replace("cryptography", "cryptographY"), key)
    other = VerifierKey.parse(VECTORS["other_verifier_keys"][0])
    with pytest.raises(VerificationError, match="no signature by EnochRoot"):
        open_note(v["note"], other)
    with pytest.raises(VerificationError, match="key id"):
        VerifierKey.parse(v["verifier_key"].replace("c74f20a3", "c74f20a4"))


def test_checkpoint_signed_and_cosigned() -> None:
    ledger = Signer.generate("opsledger.test")
    cp = Checkpoint("opsledger.test/op-1", 12, bytes(range(32)))
    note = ledger.sign_note(cp.text())
    assert note.splitlines()[:3] == [
        "opsledger.test/op-1",
        "12",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    ]
    assert open_checkpoint(note, ledger.public, "opsledger.test/op-1") == cp
    with pytest.raises(VerificationError, match="not 'opsledger.test/op-2'"):
        open_checkpoint(note, ledger.public, "opsledger.test/op-2")
    witness = Signer.generate("witness.test", COSIGNATURE_V1)
    cosigned = witness.cosign(note, 1_790_000_000)
    assert verify_cosignature(cosigned, witness.public) == 1_790_000_000
    assert open_checkpoint(cosigned, ledger.public) == cp  # the log's signature still checks
    forged = cosigned.replace("\n12\n", "\n13\n")
    with pytest.raises(VerificationError):
        verify_cosignature(forged, witness.public)


@pytest.mark.parametrize(
    "text", ["a\n12\n", "a\n012\nAAAA\n", "a\n1\nnot base64!\n", "a\n1\nAAAA\n"]
)
def test_malformed_checkpoints(text: str) -> None:
    with pytest.raises(VerificationError):
        parse_checkpoint(text)


def test_key_file_generated_once_private(tmp_path: Path) -> None:
    path = tmp_path / "tlog" / "ledger.key"
    first = load_or_create(path, "opsledger.test", 1)
    assert path.stat().st_mode & 0o777 == 0o600
    again = load_or_create(path, "ignored", 1)
    assert again.public == first.public


def test_production_needs_the_signing_key_as_a_secret() -> None:
    from pydantic import ValidationError

    from services.tlog.keys import ledger_signer
    from services.tlog.settings import TlogSettings

    with pytest.raises(ValidationError, match="OPSLEDGER_TLOG_SIGNING_KEY"):
        TlogSettings(env="production")
    key = Signer.generate("ledger.force.example")
    settings = TlogSettings(env="production", signing_key=key.secret())
    assert ledger_signer(settings).public == key.public
