"""Shared fixtures: each module in tests/fixtures/ starts one kind of real component.

Fixture modules are registered here as plugins (not copied into test modules), so every test
package shares them. Add one line per fixture module.
"""

pytest_plugins: list[str] = [
    "tests.fixtures.db",
    "tests.fixtures.server",
    "tests.fixtures.webhooks",
]
