"""Load tests: Locust personas and the national-rollout load shape, with SLO verdicts."""
