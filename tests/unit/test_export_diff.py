"""Differential folded stacks: two counts per line, sorted, zero where a side lacks the stack."""

from __future__ import annotations

import pytest

from mcpprof.analyse.ops import diff
from mcpprof.errors import UsageError
from mcpprof.export import diff as D
from mcpprof.model import CPU, SAMPLES, WALL

from .conftest import MCP_METADATA, profile_from_sections

BASE = [({"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo"}, """
main (a.py:1);echo (a.py:5) 10 100
main (a.py:1);echo (a.py:5);dumps (j.py:2) 20 200
main (a.py:1);gone (a.py:9) 5 50
""")]
NEW = [({"mcp.method.name": "tools/call", "gen_ai.tool.name": "echo"}, """
main (a.py:1);echo (a.py:5) 10 100
main (a.py:1);echo (a.py:5);dumps (j.py:2) 60 600
main (a.py:1);added (a.py:3) 7 70
""")]


def pair():
    return (profile_from_sections(BASE, [SAMPLES, CPU], MCP_METADATA),
            profile_from_sections(NEW, [SAMPLES, CPU], MCP_METADATA))


def test_two_counts(golden):
    base, new = pair()
    out = D.render_folded(diff(base, new))
    golden("diff.cpu.folded", out)
    assert out.decode().splitlines() == [
        "tools/call echo;main (a.py:1);added (a.py:3) 0 70",
        "tools/call echo;main (a.py:1);echo (a.py:5) 100 100",
        "tools/call echo;main (a.py:1);echo (a.py:5);dumps (j.py:2) 200 600",
        "tools/call echo;main (a.py:1);gone (a.py:9) 50 0",
    ]
    assert D.folded_pair(base, new, "samples") == D.render_folded(diff(base, new), "samples")


def test_normalize_scales_base_to_new_total():
    base, new = pair()
    lines = D.folded_pair(base, new, normalize=True).decode().splitlines()
    a = sum(int(line.split()[-2]) for line in lines)
    b = sum(int(line.split()[-1]) for line in lines)
    assert abs(a - b) <= len(lines) and b == 770


def test_mcp_profile_against_itself_and_errors(mcp_profile):
    out = D.folded_pair(mcp_profile, mcp_profile, WALL).decode()
    assert all(line.split()[-1] == line.split()[-2] for line in out.splitlines())
    with pytest.raises(UsageError):
        D.render_folded(mcp_profile)  # not a diff profile
    with pytest.raises(UsageError):
        D.folded_pair(mcp_profile, mcp_profile, "alloc_space")
