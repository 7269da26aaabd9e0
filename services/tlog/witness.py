"""A witness: co-signs a ledger's checkpoints only after checking it never rewrote history.

Run by someone other than the ledger (the auditor's office, a neighbouring force) with its own
key. For each operation it keeps the last checkpoint it cosigned; given a newer one, it checks
the ledger's signature, then a consistency proof from the one it kept (RFC 9162 2.1.4), and
only then adds its cosignature (C2SP tlog-cosignature/v1, Ed25519). A checkpoint that does not
extend the kept one (a different root at the same size, a smaller size, a failing proof) is a
fork: refused, never cosigned, and reported with the evidence (both signed notes and the proof).

`step` is the pure decision; `services.cli.witness` fetches over HTTP and keeps the state.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from services.tlog.keys import Signer
from services.tlog.verifier import (
    Checkpoint,
    VerificationError,
    VerifierKey,
    open_checkpoint,
    verify_consistency,
)


class Fork(Exception):
    """The ledger showed a checkpoint that does not extend the one this witness cosigned."""

    def __init__(self, reason: str, kept: str, offered: str, proof: Sequence[str]) -> None:
        super().__init__(reason)
        self.reason, self.kept, self.offered, self.proof = reason, kept, offered, list(proof)

    def evidence(self) -> dict[str, object]:
        return {"reason": self.reason, "kept": self.kept, "offered": self.offered,
                "proof": self.proof}  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """What the witness did with an offered checkpoint."""

    checkpoint: Checkpoint
    cosigned: str | None  # the offered note with this witness's cosignature; None if unchanged
    message: str


def step(
    kept: str | None,
    offered: str,
    proof: Sequence[str] | None,
    *,
    ledger_key: VerifierKey,
    origin: str,
    witness: Signer,
    now: int,
) -> Outcome:
    """Decide on ``offered`` given the last note cosigned (``kept``) and a consistency proof.

    Raises `VerificationError` when the offered note is not the ledger's, `Fork` when it does
    not extend ``kept``.
    """
    new = open_checkpoint(offered, ledger_key, origin)
    if kept is None:
        return Outcome(new, witness.cosign(offered, now), "first checkpoint, cosigned")
    old = open_checkpoint(kept, ledger_key, origin)
    if new.size < old.size:
        raise Fork(f"size went back from {old.size} to {new.size}", kept, offered, proof or [])
    if new.size == old.size:
        if new.root != old.root:
            raise Fork(f"two roots for size {new.size}", kept, offered, [])
        return Outcome(new, None, f"size {new.size} already cosigned")
    hashes = [base64.b64decode(p) for p in proof or []]
    try:
        verify_consistency(old.size, new.size, hashes, old.root, new.root)
    except VerificationError as exc:
        raise Fork(
            f"not consistent with size {old.size}: {exc}", kept, offered, proof or []
        ) from exc
    return Outcome(new, witness.cosign(offered, now), f"{old.size} -> {new.size}, cosigned")
