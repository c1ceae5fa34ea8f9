"""Root test configuration: the test environment, and the fixture modules in use."""

import os

os.environ["CONTACTPOINT_ENVIRONMENT"] = "test"

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.database",
    "tests.fixtures.world",
    "tests.fixtures.population",
    "tests.fixtures.backup",
    "tests.fixtures.attack",
]
