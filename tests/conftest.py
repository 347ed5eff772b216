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
