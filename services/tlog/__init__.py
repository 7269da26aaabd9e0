"""The transparency log: an RFC 9162 Merkle tree per operation, signed checkpoints, proofs.

`verifier` is standalone (a third party's copy); the rest is the ledger's side.
"""
