"""Locust users: the practitioners of the crowd, and the adversaries hidden in it."""
