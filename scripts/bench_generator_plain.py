"""Locust's own users in a plain closed loop, for the generator benchmark's baselines.

Each user sends the registry's search and view shapes back to back (no waiting, no schedule,
no histograms of ours): `locust -f bench_generator_plain.py HttpUser` or `... FastHttpUser`.
"""

from __future__ import annotations

from typing import Any

from locust import FastHttpUser as LocustFastHttpUser
from locust import HttpUser as LocustHttpUser
from locust import constant, task

SEARCH = {"family_name": "Testperson", "given_name": "Alex", "date_of_birth": "2015-03-01"}
HEADERS = {"Authorization": "Bearer t", "X-Access-Reason": "service_delivery"}


def lookup(client: Any) -> None:
    """A search and the view of the child found, back to back."""
    client.post("/api/v1/children/search", json=SEARCH, headers=HEADERS, name="search")
    client.get("/api/v1/children/ABCDEFGHJKLMN", headers=HEADERS, name="view")


class HttpUser(LocustHttpUser):
    """Locust's requests-based user."""

    wait_time = constant(0)

    @task
    def lookup(self) -> None:
        lookup(self.client)


class FastHttpUser(LocustFastHttpUser):
    """Locust's geventhttpclient user."""

    wait_time = constant(0)

    @task
    def lookup(self) -> None:
        lookup(self.client)
