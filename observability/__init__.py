"""Observability: OpenTelemetry set-up, collector configuration, dashboards and alert rules."""
