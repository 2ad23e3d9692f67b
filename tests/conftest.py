"""Shared fixtures: each module in tests/fixtures/ starts one kind of real component.

Fixture modules are registered here as plugins (not copied into test modules), so every test
package shares them. Add one line per fixture module.
"""

pytest_plugins: list[str] = [
    "tests.fixtures.agents",
    "tests.fixtures.browser",
    "tests.fixtures.db",
    "tests.fixtures.ingest_receiver",
    "tests.fixtures.modbus_server",
    "tests.fixtures.server",
    "tests.fixtures.simulators",
    "tests.fixtures.webhooks",
]
