"""Audit: typed events on an append-only Merkle log with signed checkpoints."""
