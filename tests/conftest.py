"""Shared pytest setup. Fixtures live in tests/fixtures/, one module per piece of the test bed."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.controlplane",
    "tests.fixtures.runtime",
    "tests.fixtures.sandbox",
    "tests.fixtures.azurite",
    "tests.fixtures.operator",
]

TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The folder says what kind of test it is, so nobody forgets a marker.
    for item in items:
        parts = Path(str(item.fspath)).relative_to(TESTS).parts
        if parts[0] in ("integration", "e2e"):
            item.add_marker(getattr(pytest.mark, parts[0]))
