"""Audit: history, chain and totals verification, evidence bundles, rebuild, access log."""
