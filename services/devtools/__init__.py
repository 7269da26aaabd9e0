"""Helpers for tests, benchmarks and local tooling (never imported by a running service)."""
