"""Unit-test fixtures: golden files and profiles built from folded-stack text.

Golden files live in ``tests/unit/golden``; ``pytest tests/unit --update-goldens`` (or
``MCPPROF_UPDATE_GOLDENS=1 pytest``) rewrites them from the current output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence, Tuple, Union

import pytest

from mcpprof.model import Profile, ProfileBuilder, ValueType
from mcpprof.model.folded import parse_frame

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    # pytest reads options only from conftests it loads at start-up: this one is loaded when
    # tests/unit (or a file in it) is named on the command line. A root conftest may register the
    # same option so that a bare ``pytest --update-goldens`` works; then this one steps aside.
    try:
        parser.addoption("--update-goldens", action="store_true", default=False,
                         help="rewrite tests/unit/golden/* from the current output instead of comparing")
    except ValueError:
        pass


def _updating(config: pytest.Config) -> bool:
    try:
        flag = bool(config.getoption("--update-goldens"))
    except ValueError:  # option not registered (conftest loaded late)
        flag = False
    return flag or os.environ.get("MCPPROF_UPDATE_GOLDENS") == "1"


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, Union[str, bytes]], None]:
    """``golden(name, actual)``: compare with ``tests/unit/golden/<name>``, or write it when
    updating (``--update-goldens`` or MCPPROF_UPDATE_GOLDENS=1)."""
    updating = _updating(request.config)

    def check(name: str, actual: Union[str, bytes]) -> None:
        data = actual.encode("utf-8") if isinstance(actual, str) else actual
        path = GOLDEN_DIR / name
        if updating:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing: run  pytest tests/unit --update-goldens")
        expected = path.read_bytes()
        if data != expected:
            # compare as text for a readable diff
            assert data.decode("utf-8", "replace") == expected.decode("utf-8", "replace"), (
                f"output differs from {path}; if the change is intended: pytest tests/unit --update-goldens")

    return check


Section = Tuple[Mapping[str, str], str]


def profile_from_sections(sections: Iterable[Section], types: Sequence[ValueType],
                          metadata: Mapping[str, object] = None) -> Profile:
    """A profile from folded text with one value column per type: ``a (f.py:1);b (f.py:2) 3 30 40``.

    Each section is (labels, text); every line of its text gets those labels.
    """
    builder = ProfileBuilder(list(types), dict(metadata or {"collector": "folded"}))
    for labels, text in sections:
        for line in text.strip().splitlines():
            line = line.strip()
            if not line:
                continue
            parts = line.rsplit(" ", len(types))
            stack, values = parts[0], [int(v) for v in parts[1:]]
            builder.add([parse_frame(f) for f in stack.split(";")], values, dict(labels))
    return builder.build()


@pytest.fixture
def sections_profile() -> Callable[..., Profile]:
    return profile_from_sections


# -- the exporters' fixture: a small MCP server, three value columns ------------------------------

STDLIB = "/usr/lib/python3.11"
SITE = "/opt/venv/lib/python3.11/site-packages"
APP = "/home/alice/srv"

_ECHO = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo", "thread.name": "MainThread"}
_SLOW = {"mcp.method.name": "tools/call", "gen_ai.tool.name": "slow_report", "thread.name": "worker-1"}
_LIST = {"mcp.method.name": "tools/list", "thread.name": "MainThread"}
_IDLE = {"thread.name": "MainThread"}

MCP_SECTIONS = [
    (_ECHO, f"""
main ({APP}/server.py:88);run ({SITE}/mcp/server/lowlevel/server.py:620);handle ({SITE}/mcp/server/lowlevel/server.py:701);echo ({APP}/server.py:20) 5 5000000 5200000
main ({APP}/server.py:88);run ({SITE}/mcp/server/lowlevel/server.py:620);handle ({SITE}/mcp/server/lowlevel/server.py:701);echo ({APP}/server.py:20);dumps ({STDLIB}/json/__init__.py:231) 3 2900000 3100000
"""),
    (_SLOW, f"""
_bootstrap ({STDLIB}/threading.py:995);slow_report ({APP}/server.py:40);render ({APP}/report.py:12) 6 5800000 6000000
_bootstrap ({STDLIB}/threading.py:995);slow_report ({APP}/server.py:40);sleep ({STDLIB}/asyncio/tasks.py:649) 9 100000 9000000
"""),
    (_LIST, f"""
main ({APP}/server.py:88);run ({SITE}/mcp/server/lowlevel/server.py:620);handle ({SITE}/mcp/server/lowlevel/server.py:701);list_tools ({SITE}/mcp/server/lowlevel/server.py:410) 1 1000000 1000000
"""),
    (_IDLE, f"""
main ({APP}/server.py:88);run ({SITE}/mcp/server/lowlevel/server.py:620);stdin_reader ({SITE}/mcp/server/stdio.py:61) 4 300000 4000000
main ({APP}/server.py:88);run ({SITE}/mcp/server/lowlevel/server.py:620);handle ({SITE}/mcp/server/lowlevel/server.py:701);echo ({APP}/server.py:20) 0 0 0
"""),
]

MCP_METADATA = {"collector": "sampler", "sys_path": [STDLIB, SITE, APP], "stdlib_dirs": [STDLIB],
                "site_dirs": [SITE]}


@pytest.fixture
def mcp_profile() -> Profile:
    """Two tools, tools/list, idle transport; MainThread and worker-1; samples, CPU and wall."""
    from mcpprof.model import CPU, SAMPLES, WALL

    return profile_from_sections(MCP_SECTIONS, [SAMPLES, CPU, WALL], MCP_METADATA)
