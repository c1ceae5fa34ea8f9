"""Shared plumbing for the registry: settings, database, crypto, identifiers and errors."""
