"""Alerts: events raised for review by a local authority's management team."""
