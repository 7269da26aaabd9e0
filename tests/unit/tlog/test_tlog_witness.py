"""The witness cosigns a checkpoint only when it extends the last one it cosigned."""

from __future__ import annotations

import base64

import pytest

from services.tlog import merkle
from services.tlog.keys import Signer
from services.tlog.verifier import (
    COSIGNATURE_V1,
    Checkpoint,
    VerificationError,
    verify_cosignature,
)
from services.tlog.witness import Fork, step

ORIGIN = "ledger.test/op-w"
LEDGER = Signer.generate("ledger.test")
WITNESS = Signer.generate("witness.test", COSIGNATURE_V1)


def tree(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    return {(lvl, idx): h for lvl, idx, h in merkle.append(0, [], leaves).nodes}


def note(nodes: dict[tuple[int, int], bytes], size: int, signer: Signer = LEDGER) -> str:
    return signer.sign_note(Checkpoint(ORIGIN, size, merkle.root(nodes.__getitem__, size)).text())


def proof(nodes: dict[tuple[int, int], bytes], m: int, n: int) -> list[str]:
    return [base64.b64encode(h).decode() for h in merkle.consistency_proof(nodes.__getitem__, m, n)]


def run(kept: str | None, offered: str, p: list[str] | None):  # type: ignore[no-untyped-def]
    return step(kept, offered, p, ledger_key=LEDGER.public, origin=ORIGIN, witness=WITNESS, now=1)


LEAVES = [f"e{i}".encode() for i in range(20)]
HONEST = tree(LEAVES)


def test_first_then_consistent_growth_is_cosigned() -> None:
    first = run(None, note(HONEST, 7), None)
    assert first.cosigned is not None and verify_cosignature(first.cosigned, WITNESS.public) == 1
    second = run(first.cosigned, note(HONEST, 20), proof(HONEST, 7, 20))
    assert second.cosigned is not None and second.checkpoint.size == 20
    same = run(second.cosigned, note(HONEST, 20), None)
    assert same.cosigned is None


def test_a_rewritten_history_is_a_fork_and_is_not_cosigned() -> None:
    kept = run(None, note(HONEST, 7), None).cosigned
    forked = tree([*LEAVES[:3], b"rewritten", *LEAVES[4:]])  # leaf 3 changed under size 7
    with pytest.raises(Fork, match="not consistent with size 7") as info:
        run(kept, note(forked, 20), proof(forked, 7, 20))
    assert info.value.evidence()["kept"] == kept
    # The honest proof does not rescue the forked root either.
    with pytest.raises(Fork):
        run(kept, note(forked, 20), proof(HONEST, 7, 20))


def test_same_size_other_root_and_rollback_are_forks() -> None:
    kept = run(None, note(HONEST, 10), None).cosigned
    other = tree([b"x", *LEAVES[1:]])
    with pytest.raises(Fork, match="two roots for size 10"):
        run(kept, note(other, 10), None)
    with pytest.raises(Fork, match="went back"):
        run(kept, note(HONEST, 9), None)


def test_a_checkpoint_not_signed_by_the_ledger_is_refused() -> None:
    impostor = Signer.generate("ledger.test")  # same name, other key
    with pytest.raises(VerificationError, match="no signature by ledger.test"):
        run(None, note(HONEST, 5, impostor), None)
