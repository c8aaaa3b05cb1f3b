"""Latency theorems (placeholder)."""

THEOREMS: list = []
