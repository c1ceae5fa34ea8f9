"""Practitioners: user accounts, two-factor login, sessions and account administration."""
