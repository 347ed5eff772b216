"""Shared test fixtures. Area-specific fixtures live in each folder's own conftest.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def python() -> str:
    """The interpreter running the tests (it has mcpprof and the MCP SDK installed)."""
    return sys.executable


#: Long end-to-end suites (each builds virtualenvs, drives servers for many seconds or runs
#: benchmark-like loops). `bash scripts/test.sh` runs them only with --all
#: (or MCPPROF_TEST_ALL=1); the default run keeps CI well under 20 minutes on 2 cores.
HEAVY_FILES = frozenset({
    "test_frameworks.py", "test_leaks.py", "test_memory.py", "test_memory_memray.py",
    "test_bench_gate.py", "test_bench_locust.py", "test_bench_sessions.py", "test_bench_clients.py",
    "test_backends.py", "test_attach.py", "test_attach_merge.py", "test_attach_frameworks.py",
})


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    for item in items:
        if Path(str(item.fspath)).name in HEAVY_FILES:
            item.add_marker(pytest.mark.heavy)
