"""The national-rollout load test: `locust -f loadtests/locustfile.py --personas FILE ...`.

Gathers the users and the load shape; the options are in `loadtests/engine.py`
(`locust -f loadtests/locustfile.py --help` lists them under "ContactPoint load").
"""

from loadtests.engine import NODE, RolloutShape
from loadtests.scenarios.adversaries import alerts_finisher
from loadtests.scenarios.practitioners import Practitioner

NODE.finishers.append(alerts_finisher)

__all__ = ["Practitioner", "RolloutShape"]
