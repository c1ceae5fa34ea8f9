"""Per-process counters that code below the app records into (no-ops while telemetry is off).

``dependency_refused`` counts requests answered 503 because a dependency (``database``,
``limits``) was down: a per-process counter, so Prometheus sums it over the workers.
"""

from __future__ import annotations

from opentelemetry import metrics

_refusals: metrics.Counter | None = None


def dependency_refused(dependency: str) -> None:
    """One request refused (503) because ``dependency`` was unavailable."""
    global _refusals
    if _refusals is None:  # the global provider's (a no-op until `setup.configure` sets one)
        _refusals = metrics.get_meter("contactpoint.registry").create_counter(
            "contactpoint.dependency.refusals",
            unit="{refusal}",
            description="Requests refused because a dependency was unavailable",
        )
    _refusals.add(1, {"dependency": dependency})
