"""Limits: per-user and per-source rates, daily quotas and harvesting detection."""
