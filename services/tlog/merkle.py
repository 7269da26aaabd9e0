"""The ledger's side of the RFC 9162 tree: grow it, and write proofs, from stored subtrees.

A *node* is a complete subtree, named by ``(level, index)``: it covers leaves
``[index * 2**level, (index + 1) * 2**level)``; level 0 is a leaf hash. The ledger stores every
node once it is complete (about two per leaf) and never changes one, so that:

* appending needs only the *frontier* of the tree (the complete subtrees along its right edge,
  at most one per level: `frontier_keys`), never its history;
* the root at any past size, and any inclusion or consistency proof, is a fold over O(log n)
  stored nodes (`range_hash`).

Proof generation follows RFC 9162 2.1.3.1 (PATH) and 2.1.4.1 (PROOF / SUBPROOF) over leaf
ranges; every range the recursion asks for starts on a boundary of its own size, so its hash is
a fold of the stored nodes that decompose it. Verification lives in `services.tlog.verifier`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from services.tlog.verifier import EMPTY_ROOT, leaf_hash, node_hash

NodeKey = tuple[int, int]  # (level, index)
NodeGetter = Callable[[NodeKey], bytes]


def frontier_keys(size: int) -> list[NodeKey]:
    """The complete subtrees of a tree of ``size`` leaves, left to right (largest first)."""
    keys = []
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, (size >> level) - 1))
    return keys


def decompose(lo: int, hi: int) -> list[NodeKey]:
    """The stored nodes covering leaves ``[lo, hi)``, left to right, largest first.

    ``lo`` must be a multiple of the largest power of two not above ``hi - lo`` (true of every
    range RFC 9162's recursion produces, and of ``[0, n)``).
    """
    keys = []
    while lo < hi:
        level = (hi - lo).bit_length() - 1
        if lo % (1 << level):
            raise ValueError(f"range [{lo}, {hi}) does not start on a subtree boundary")
        keys.append((level, lo >> level))
        lo += 1 << level
    return keys


def fold(hashes: Sequence[bytes]) -> bytes:
    """The hash of adjacent complete subtrees, largest first: right to left, as RFC 9162 nests."""
    if not hashes:
        return EMPTY_ROOT
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def range_hash(get: NodeGetter, lo: int, hi: int) -> bytes:
    """MTH of leaves ``[lo, hi)`` from stored nodes."""
    return fold([get(k) for k in decompose(lo, hi)])


def root(get: NodeGetter, size: int) -> bytes:
    """The root of the tree of ``size`` leaves."""
    return range_hash(get, 0, size)


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(get: NodeGetter, index: int, size: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of ``size`` leaves (RFC 9162 PATH)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:  # walk down; siblings are collected top-down, returned bottom-up
        k = _split(hi - lo)
        if index < lo + k:
            path.append(range_hash(get, lo + k, hi))
            hi = lo + k
        else:
            path.append(range_hash(get, lo, lo + k))
            lo += k
    return path[::-1]


def consistency_proof(get: NodeGetter, size1: int, size2: int) -> list[bytes]:
    """The proof that the tree of ``size2`` extends the one of ``size1`` (RFC 9162 PROOF)."""
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to {size2}")
    out: list[bytes] = []
    lo, hi, m, whole = 0, size2, size1, True
    while m != hi - lo:  # SUBPROOF(m, D[lo:hi], whole), unrolled
        k = _split(hi - lo)
        if m <= k:
            out.append(range_hash(get, lo + k, hi))
            hi = lo + k
        else:
            out.append(range_hash(get, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        out.append(range_hash(get, lo, hi))
    return out[::-1]


def needed(fn: Callable[[NodeGetter], object]) -> set[NodeKey]:
    """The node keys a computation reads (run it once against a recorder)."""
    keys: set[NodeKey] = set()

    def record(key: NodeKey) -> bytes:
        keys.add(key)
        return EMPTY_ROOT

    fn(record)
    return keys


@dataclass(frozen=True, slots=True)
class Growth:
    """What appending leaves did: the new complete nodes, the new size and root."""

    nodes: list[tuple[int, int, bytes]]  # (level, index, hash)
    size: int
    root: bytes
    frontier: list[tuple[int, int, bytes]]


def append(size: int, frontier: Sequence[bytes], leaves: Iterable[bytes]) -> Growth:
    """Append ``leaves`` (raw leaf data) to a tree of ``size`` whose frontier hashes are given.

    ``frontier`` holds the hashes of `frontier_keys(size)`, in that order. Returns every node
    that became complete (the leaves' own hashes included), ready to store.
    """
    keys = frontier_keys(size)
    if len(keys) != len(frontier):
        raise ValueError(f"a tree of size {size} has {len(keys)} frontier nodes")
    edge = [(lvl, idx, h) for (lvl, idx), h in zip(keys, frontier, strict=True)]
    new: list[tuple[int, int, bytes]] = []
    for leaf in leaves:
        node = (0, size, leaf_hash(leaf))
        new.append(node)
        while edge and edge[-1][0] == node[0]:
            left = edge.pop()
            node = (node[0] + 1, node[1] >> 1, node_hash(left[2], node[2]))
            new.append(node)
        edge.append(node)
        size += 1
    return Growth(new, size, fold([h for _, _, h in edge]), edge)


def prefix_roots(leaf_hashes: Iterable[bytes], sizes: Iterable[int]) -> dict[int, bytes]:
    """The root of every prefix whose size is in ``sizes``, in one pass over the leaves."""
    wanted = set(sizes)
    out: dict[int, bytes] = {}
    if 0 in wanted:
        out[0] = EMPTY_ROOT
    edge: list[tuple[int, bytes]] = []
    n = 0
    for h in leaf_hashes:
        height, acc = 0, h
        while edge and edge[-1][0] == height:
            acc = node_hash(edge.pop()[1], acc)
            height += 1
        edge.append((height, acc))
        n += 1
        if n in wanted:
            out[n] = fold([x for _, x in edge])
    return out
