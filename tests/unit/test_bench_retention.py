"""The per-session figures and the leak / allocator-retention verdict of ``bench --memory``."""

from __future__ import annotations

import pytest

from mcpprof.bench.retention import DEFINITIONS, VERDICTS, per_session, retained, site_growth, slope, verdict


def test_slope_and_per_session():
    assert slope([0, 1, 2, 3], [10, 12, 14, 16]) == (2.0, 1.0)
    rows = [{"sessions": n, "a": 100 + 40 * n, "b": None} for n in (0, 10, 20)]
    assert per_session(rows, ("a", "b")) == {"a": {"bytes_per_session": 40, "r2": 1.0}}
    assert retained({"a": 100}, {"a": 900, "b": 1}, 20, ("a", "b")) == {"a": 40}


def test_site_growth_names_the_site_that_grew():
    before = [[[["x.py", 1]], 1000, 10], [[["y.py", 2]], 500, 1]]
    after = [[[["x.py", 1]], 1000, 10], [[["y.py", 2]], 4500, 41]]
    assert site_growth(before, after, 10) == [{"site": "y.py:2", "bytes_per_session": 400, "objects_per_session": 4.0}]


@pytest.mark.parametrize("args,expected", [
    ((40_000, 4_300, 4_100, 40_000, 45_000), "leak + allocator retention"),
    ((40_000, 4_300, 4_100, 40_000, 4_400), "leak"),
    ((40_000, 2_500, 90, 40_000, 37_000), "allocator retention"),   # the example server, measured
    ((40_000, 3_000, 0, 40_000, 1_000), "returned"),                # one-time only: not a leak
    ((40_000, None, None, 40_000, 37_000), "inconclusive"),         # no traced bytes (agent not loaded)
])
def test_verdict(args, expected):
    out = verdict(*args)
    assert out["verdict"] == expected and out["verdict"] in VERDICTS and out["reason"]
    if expected == "returned":
        assert out["one_time_bytes_per_session"] == 3_000 and out["leak_bytes_per_session"] == 0
    if expected == "allocator retention":
        assert out["allocator_retention_bytes_per_session"] == 34_500


def test_every_verdict_term_is_defined():
    assert {"leak", "one_time", "allocator_retention", "returned", "per_session", "traced_bytes"} <= set(DEFINITIONS)
