"""The tree and its proofs: against published vectors and a naive RFC 9162 implementation.

`Naive` below is written straight from RFC 9162 section 2.1 (MTH, PATH, PROOF/SUBPROOF, as
recursive list slicing); the ledger's code (`services.tlog.merkle`) builds the same things
incrementally from stored subtrees, and `services.tlog.verifier` checks them. All three must
agree, and agree with the transparency-dev/merkle test vectors (data in vectors/).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.tlog import merkle
from services.tlog.verifier import (
    EMPTY_ROOT,
    VerificationError,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "transparency_dev_merkle.json").read_text()
)
# The eight leaves of the RFC 6962 reference test data, which the vectors are computed over.
RFC_LEAVES = [bytes.fromhex(h) for h in (
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
)]  # fmt: skip


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class Naive:
    """RFC 9162 2.1, literally: recursive over lists of entries."""

    @staticmethod
    def k(n: int) -> int:
        k = 1
        while k * 2 < n:
            k *= 2
        return k

    @classmethod
    def mth(cls, d: list[bytes]) -> bytes:
        if not d:
            return sha(b"")
        if len(d) == 1:
            return sha(b"\x00" + d[0])
        k = cls.k(len(d))
        return sha(b"\x01" + cls.mth(d[:k]) + cls.mth(d[k:]))

    @classmethod
    def path(cls, m: int, d: list[bytes]) -> list[bytes]:
        if len(d) == 1:
            return []
        k = cls.k(len(d))
        if m < k:
            return cls.path(m, d[:k]) + [cls.mth(d[k:])]
        return cls.path(m - k, d[k:]) + [cls.mth(d[:k])]

    @classmethod
    def subproof(cls, m: int, d: list[bytes], b: bool) -> list[bytes]:
        if m == len(d):
            return [] if b else [cls.mth(d)]
        k = cls.k(len(d))
        if m <= k:
            return cls.subproof(m, d[:k], b) + [cls.mth(d[k:])]
        return cls.subproof(m - k, d[k:], False) + [cls.mth(d[:k])]


class Stored:
    """Every complete node of a tree grown with `merkle.append`, as the ledger stores them."""

    def __init__(self, leaves: list[bytes], step: int = 3) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        size = 0
        for i in range(0, len(leaves), step):  # grow in batches, like the aggregator
            frontier = [self.nodes[k] for k in merkle.frontier_keys(size)]
            growth = merkle.append(size, frontier, leaves[i : i + step])
            for level, index, h in growth.nodes:
                assert (level, index) not in self.nodes, "a node is written once"
                self.nodes[(level, index)] = h
            size = growth.size
            assert growth.root == Naive.mth(leaves[:size])
        self.size = size

    def get(self, key: tuple[int, int]) -> bytes:
        return self.nodes[key]


def b64(s: str | None) -> bytes:
    return base64.b64decode(s or "")


def test_rfc_leaves_reproduce_the_published_roots() -> None:
    happy = [v for v in VECTORS["inclusion"] if v["desc"] == "happy path"]
    assert happy
    for v in happy:
        assert Naive.mth(RFC_LEAVES[: v["treeSize"]]) == b64(v["root"])
        assert root_of([leaf_hash(x) for x in RFC_LEAVES[: v["treeSize"]]]) == b64(v["root"])


@pytest.mark.parametrize("v", VECTORS["inclusion"], ids=lambda v: v["file"])
def test_inclusion_vectors(v: dict[str, Any]) -> None:
    args = (
        v["leafIdx"],
        v["treeSize"],
        b64(v["leafHash"]),
        [b64(p) for p in v["proof"] or []],
        b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)
        stored = Stored(RFC_LEAVES[: v["treeSize"]])
        assert merkle.inclusion_proof(stored.get, v["leafIdx"], v["treeSize"]) == args[3]


@pytest.mark.parametrize("v", VECTORS["consistency"], ids=lambda v: v["file"])
def test_consistency_vectors(v: dict[str, Any]) -> None:
    args = (
        v["size1"],
        v["size2"],
        [b64(p) for p in v["proof"] or []],
        b64(v["root1"]),
        b64(v["root2"]),
    )
    if v["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
        if v["size2"] <= len(RFC_LEAVES) and b64(v["root2"]) == Naive.mth(RFC_LEAVES[: v["size2"]]):
            stored = Stored(RFC_LEAVES[: v["size2"]])
            assert merkle.consistency_proof(stored.get, v["size1"], v["size2"]) == args[2]


def test_every_proof_of_small_trees_matches_the_naive_rfc_and_verifies() -> None:
    leaves = [f"event {i}".encode() for i in range(40)]
    stored = Stored(leaves, step=5)
    for n in range(1, 41):
        root = merkle.root(stored.get, n)
        assert root == Naive.mth(leaves[:n])
        for m in range(n):
            proof = merkle.inclusion_proof(stored.get, m, n)
            assert proof == Naive.path(m, leaves[:n])
            verify_inclusion(m, n, leaf_hash(leaves[m]), proof, root)
        for m in range(1, n + 1):
            proof = merkle.consistency_proof(stored.get, m, n)
            assert proof == Naive.subproof(m, leaves[:n], True)
            verify_consistency(m, n, proof, Naive.mth(leaves[:m]), root)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.binary(max_size=8), min_size=1, max_size=70),
    st.integers(min_value=1, max_value=9),
    st.data(),
)
def test_any_tree_any_batching(leaves: list[bytes], step: int, data: st.DataObject) -> None:
    stored = Stored(leaves, step=step)
    n = len(leaves)
    m = data.draw(st.integers(min_value=0, max_value=n - 1))
    size1 = data.draw(st.integers(min_value=1, max_value=n))
    assert merkle.inclusion_proof(stored.get, m, n) == Naive.path(m, leaves)
    assert merkle.consistency_proof(stored.get, size1, n) == Naive.subproof(size1, leaves, True)


def test_a_tampered_leaf_or_path_fails() -> None:
    leaves = [bytes([i]) for i in range(11)]
    stored = Stored(leaves)
    root = merkle.root(stored.get, 11)
    proof = merkle.inclusion_proof(stored.get, 6, 11)
    with pytest.raises(VerificationError, match="root"):
        verify_inclusion(6, 11, leaf_hash(b"forged"), proof, root)
    with pytest.raises(VerificationError):
        verify_inclusion(6, 11, leaf_hash(leaves[6]), proof[:-1], root)
    other = Stored([*leaves[:4], b"x", *leaves[5:]])
    cproof = merkle.consistency_proof(other.get, 7, 11)
    with pytest.raises(VerificationError):  # a fork: leaf 4 rewritten under the old size
        verify_consistency(7, 11, cproof, Naive.mth(leaves[:7]), merkle.root(other.get, 11))


def test_frontier_and_needed_nodes_are_logarithmic() -> None:
    assert merkle.frontier_keys(0) == []
    assert merkle.frontier_keys(6) == [(2, 0), (1, 2)]
    assert merkle.frontier_keys(13) == [(3, 0), (2, 2), (0, 12)]
    assert merkle.root(lambda k: b"", 0) == EMPTY_ROOT
    n = 1_000_003
    keys = merkle.needed(lambda get: merkle.inclusion_proof(get, 777_777, n))
    assert len(keys) <= 2 * n.bit_length()


def test_the_migrations_backfill_builds_the_same_nodes() -> None:
    import importlib

    migration = importlib.import_module("services.common.migrations.versions.0005_tlog")
    leaves = [f"old event {i}".encode() for i in range(37)]
    assert migration.subtrees(leaves) == merkle.append(0, [], leaves).nodes
