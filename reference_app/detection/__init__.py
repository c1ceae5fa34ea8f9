"""Insider-browsing detection: rules and a daily score per user over the sealed audit stream."""
