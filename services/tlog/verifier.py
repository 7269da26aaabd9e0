"""Check opsledger's signed checkpoints and Merkle proofs with nothing but this file.

A standalone verifier for third parties (an auditor, a court, a journalist): it depends on the
Python standard library and the `cryptography` package only, never on the rest of opsledger, so
it can be copied out, read in one sitting and run anywhere::

    python verifier.py proofs.json --public-key ledger.vkey     # the output of `opsledger prove`
    python verifier.py bundle.tar --public-key ledger.vkey      # an `opsledger export` bundle

What it implements, and where each rule comes from:

* the Merkle tree of RFC 9162 section 2.1: a leaf hashes as SHA-256(0x00 || leaf), an interior
  node as SHA-256(0x01 || left || right); inclusion proofs are checked as in section 2.1.3.2,
  consistency proofs as in section 2.1.4.2;
* checkpoints (c2sp.org/tlog-checkpoint): the note text is three lines, origin, tree size
  (decimal) and root hash (base64), each ending in a newline;
* signed notes (c2sp.org/signed-note): the text, a blank line, then lines
  ``— <key name> base64(key id || signature)``; an Ed25519 key (type 0x01) is published as the
  verifier key ``<name>+<key id hex>+base64(0x01 || public key)`` and its key id is the first
  four bytes of SHA-256(name || 0x0A || 0x01 || public key);
* witness cosignatures (c2sp.org/tlog-cosignature, type 0x04): Ed25519 over
  ``cosignature/v1\\ntime <t>\\n`` followed by the checkpoint text; the signature is the 8-byte
  big-endian timestamp followed by the 64-byte Ed25519 signature.

In opsledger, one tree per operation; its leaves are the operation's events in chain order,
each leaf being the event's stored body as canonical JSON (the bytes the hash chain hashes).
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import io
import json
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
ED25519 = 0x01  # signed-note signature type of a log's Ed25519 key
COSIGNATURE_V1 = 0x04  # signed-note signature type of an Ed25519 witness cosignature
EMPTY_ROOT = hashlib.sha256(b"").digest()  # the root of the tree of size 0 (RFC 9162 2.1.1)


class VerificationError(Exception):
    """A proof, a checkpoint or a signature that does not check out (the message says why)."""


# ---- the tree (RFC 9162 section 2.1) -----------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    """The hash of one leaf: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root of the tree whose leaves hash to ``leaf_hashes``, in one pass.

    Keeps the complete subtrees of the leaves seen so far (the right edge of the tree); that is
    the same tree as the RFC's recursive definition, built from the left.
    """
    edge: list[tuple[int, bytes]] = []  # (height, hash), strictly decreasing heights
    for h in leaf_hashes:
        height, acc = 0, h
        while edge and edge[-1][0] == height:
            acc = node_hash(edge.pop()[1], acc)
            height += 1
        edge.append((height, acc))
    if not edge:
        return EMPTY_ROOT
    acc = edge[-1][1]
    for _, h in reversed(edge[:-1]):
        acc = node_hash(h, acc)
    return acc


def _check_lengths(*hashes: bytes) -> None:
    if any(len(h) != 32 for h in hashes):
        raise VerificationError("a hash in the proof is not 32 bytes (SHA-256)")


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise unless ``proof`` shows the leaf hashing to ``leaf`` at ``index`` of ``root``."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is outside a tree of size {size}")
    _check_lengths(leaf, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                fn, sn = _shift_while_even(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise VerificationError("inclusion proof does not lead to the root")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Raise unless ``proof`` shows the tree ``(size2, root2)`` extends ``(size1, root1)``."""
    if size1 < 1 or size2 < size1:
        raise VerificationError(f"no consistency proof from size {size1} to size {size2}")
    _check_lengths(*proof)
    if size1 == size2:
        if proof:
            raise VerificationError("a proof between equal sizes must be empty")
        if root1 != root2:
            raise VerificationError(f"two different roots for the same size {size1}")
        return
    if not proof:
        raise VerificationError("empty consistency proof")
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            if not fn & 1:
                fn, sn = _shift_while_even(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than needed")
    if fr != root1:
        raise VerificationError(f"consistency proof does not lead to the root of size {size1}")
    if sr != root2:
        raise VerificationError(f"consistency proof does not lead to the root of size {size2}")


# ---- keys and signed notes (c2sp.org/signed-note) ------------------------------------------


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """The 4-byte key id: SHA-256(name || 0x0A || type || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([sig_type]) + public_key).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    """A public key as the signed-note spec writes it: ``name+hex id+base64(type || key)``."""

    name: str
    sig_type: int
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def __str__(self) -> str:
        blob = base64.b64encode(bytes([self.sig_type]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{blob}"

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Parse a verifier key; raise if its id does not match its name and key."""
        name, sep, rest = text.strip().partition("+")
        hex_id, sep2, blob = rest.partition("+")
        try:
            raw = base64.b64decode(blob, validate=True)
            wanted = bytes.fromhex(hex_id)
        except ValueError:
            raise VerificationError(f"not a verifier key: {text.strip()!r}") from None
        if not (sep and sep2 and name and len(wanted) == 4 and len(raw) == 33):
            raise VerificationError(f"not an Ed25519 verifier key: {text.strip()!r}")
        key = cls(name, raw[0], raw[1:])
        if key.sig_type not in (ED25519, COSIGNATURE_V1):
            raise VerificationError(f"unsupported signature type {key.sig_type:#04x}")
        if key.key_id != wanted:
            raise VerificationError(f"key id {hex_id} does not match key {name!r}")
        return key


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note."""

    name: str
    key_id: bytes
    signature: bytes


def split_note(note: str) -> tuple[str, list[NoteSignature]]:
    """The note's text (with its final newline) and its signature lines."""
    if any(c < " " and c != "\n" for c in note):
        raise VerificationError("a note must not contain control characters")
    text, sep, sigs = note.rpartition("\n\n")
    if not sep or not sigs.endswith("\n"):
        raise VerificationError("not a signed note: no blank line before signatures")
    out = []
    for line in sigs[:-1].split("\n"):
        dash, _, rest = line.partition(" ")
        name, _, blob = rest.partition(" ")
        try:
            raw = base64.b64decode(blob, validate=True)
        except ValueError:
            raise VerificationError(f"bad signature line {line!r}") from None
        if dash != "\u2014" or not name or len(raw) < 5:
            raise VerificationError(f"bad signature line {line!r}")
        out.append(NoteSignature(name, raw[:4], raw[4:]))
    return text + "\n", out


def _ed25519_ok(public_key: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def open_note(note: str, key: VerifierKey) -> str:
    """The note's text, once a signature by ``key`` (type 0x01) verifies over it."""
    text, sigs = split_note(note)
    mine = [s for s in sigs if s.name == key.name and s.key_id == key.key_id]
    if not mine:
        raise VerificationError(f"the note carries no signature by {key.name}")
    for sig in mine:
        if not _ed25519_ok(key.public_key, sig.signature, text.encode()):
            raise VerificationError(f"the signature by {key.name} does not verify")
    return text


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What an Ed25519 witness signs (tlog-cosignature/v1)."""
    return f"cosignature/v1\ntime {timestamp}\n".encode() + text.encode()


def verify_cosignature(note: str, witness: VerifierKey) -> int:
    """The time a witness cosigned the note's checkpoint; raise if it did not or it fails."""
    text, sigs = split_note(note)
    mine = [s for s in sigs if s.name == witness.name and s.key_id == witness.key_id]
    if not mine:
        raise VerificationError(f"the note carries no cosignature by {witness.name}")
    for sig in mine:
        if len(sig.signature) != 72:
            raise VerificationError(f"cosignature by {witness.name} has the wrong length")
        timestamp = int.from_bytes(sig.signature[:8], "big")
        if not _ed25519_ok(
            witness.public_key, sig.signature[8:], cosigned_message(text, timestamp)
        ):
            raise VerificationError(f"the cosignature by {witness.name} does not verify")
    return timestamp


# ---- checkpoints (c2sp.org/tlog-checkpoint) -----------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: which log (origin), how many leaves, and their root."""

    origin: str
    size: int
    root: bytes

    def text(self) -> str:
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a checkpoint's note text (extension lines are allowed and ignored)."""
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "" or any(not line for line in lines[:-1]):
        raise VerificationError("a checkpoint is at least three non-empty lines")
    origin, size, root = lines[0], lines[1], lines[2]
    if not size.isdigit() or (size != "0" and size.startswith("0")):
        raise VerificationError(f"tree size {size!r} is not a decimal number")
    try:
        root_bytes = base64.b64decode(root, validate=True)
    except ValueError:
        raise VerificationError(f"root hash {root!r} is not base64") from None
    if len(root_bytes) != 32:
        raise VerificationError("root hash is not 32 bytes")
    return Checkpoint(origin, int(size), root_bytes)


def open_checkpoint(note: str, key: VerifierKey, origin: str | None = None) -> Checkpoint:
    """The checkpoint in a signed note, after checking the log's signature (and origin)."""
    checkpoint = parse_checkpoint(open_note(note, key))
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(f"checkpoint is for {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


# ---- opsledger documents ------------------------------------------------------------------


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def verify_proofs_file(doc: dict[str, Any], key: VerifierKey) -> list[str]:
    """Check an ``opsledger prove`` document: its checkpoint, then every event's inclusion.

    Each entry carries the event's leaf (canonical JSON of the stored body), its index and
    audit path; the leaf must be the event named (same ``event_id`` and operation). When the
    document states a figure, the entries' contributions (``delta``) must add up to it.
    Returns one line per fact checked; raises at the first failure.
    """
    checkpoint = open_checkpoint(doc["checkpoint"], key)
    operation = doc.get("operation_id")
    lines = []
    for entry in doc["events"]:
        leaf = entry["leaf"].encode()
        body = json.loads(leaf)
        if body.get("event_id") != entry["event_id"]:
            raise VerificationError(f"leaf {entry['index']} is not event {entry['event_id']}")
        if operation is not None and body.get("operation_id") != operation:
            raise VerificationError(f"event {entry['event_id']} is not of {operation}")
        proof = [_b64(p) for p in entry["proof"]]
        verify_inclusion(entry["index"], checkpoint.size, leaf_hash(leaf), proof, checkpoint.root)
        lines.append(f"event {entry['event_id']} is leaf {entry['index']} of {checkpoint.size}")
    if "figure" in doc:
        total = sum(int(entry["delta"]) for entry in doc["events"])
        if total != doc["figure"]:
            raise VerificationError(f"the events add up to {total}, not {doc['figure']}")
        lines.append(f"{doc.get('metric')} = {total}: the sum of these {len(doc['events'])} events")
    lines.append(f"checkpoint {checkpoint.origin} at size {checkpoint.size} signed by {key.name}")
    return lines


def verify_bundle_tree(members: dict[str, bytes], key: VerifierKey) -> Checkpoint:
    """Check that a bundle's events are exactly the leaves of its signed checkpoint.

    ``members`` are the bundle's files: ``checkpoint`` (the signed note), ``leaves.jsonl``
    (one leaf per line, in tree order) and ``events.jsonl`` or ``events.csv`` (one event row
    per line, whose ``seq`` is its leaf index + 1 and whose ``body`` is the leaf's JSON).
    """
    if "checkpoint" not in members or "leaves.jsonl" not in members:
        raise VerificationError("the bundle carries no signed checkpoint and leaves")
    checkpoint = open_checkpoint(members["checkpoint"].decode(), key)
    leaves = members["leaves.jsonl"].splitlines()
    if len(leaves) != checkpoint.size:
        raise VerificationError(f"{len(leaves)} leaves, the checkpoint has {checkpoint.size}")
    if root_of([leaf_hash(leaf) for leaf in leaves]) != checkpoint.root:
        raise VerificationError("the leaves do not hash to the checkpoint's root")
    rows = _event_rows(members)
    if len(rows) != len(leaves):
        raise VerificationError(f"{len(rows)} events, {len(leaves)} leaves")
    for i, (row, leaf) in enumerate(zip(rows, leaves, strict=True)):
        if row["seq"] != i + 1 or row["body"] != json.loads(leaf):
            raise VerificationError(f"event at seq {row['seq']} is not leaf {i}")
    return checkpoint


def _event_rows(members: dict[str, bytes]) -> list[dict[str, Any]]:
    """(seq, body) of each row of the bundle's events file, JSON lines or CSV."""
    if "events.jsonl" in members:
        return [json.loads(line) for line in members["events.jsonl"].splitlines()]
    reader = csv.DictReader(io.StringIO(members["events.csv"].decode()))
    return [{"seq": int(r["seq"]), "body": json.loads(r["body"])} for r in reader]


def _read_bundle(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, mode="r:") as tar:
        out = {}
        for info in tar.getmembers():
            f = tar.extractfile(info) if info.isfile() else None
            if f is not None:
                out[info.name] = f.read()
        return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: check a proofs file or a bundle; exit 0 only when everything verifies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("file", type=Path, help="proofs JSON (opsledger prove) or bundle tar")
    parser.add_argument("--public-key", type=Path, required=True, help="the ledger's vkey file")
    args = parser.parse_args(argv)
    try:
        key = VerifierKey.parse(args.public_key.read_text())
        data = args.file.read_bytes()
        if tarfile.is_tarfile(io.BytesIO(data)):
            cp = verify_bundle_tree(_read_bundle(args.file), key)
            print(f"OK: the bundle's {cp.size} events are the leaves of {cp.origin}, signed")
        else:
            for line in verify_proofs_file(json.loads(data), key):
                print(f"OK: {line}")
    except (VerificationError, KeyError, ValueError, OSError) as exc:
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
