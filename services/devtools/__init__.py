"""Helpers for tests, benchmarks and the demo (never imported by a running service)."""
