"""The HTML flame graph in headless Chromium, used as a person would: opened from file:// and
inside an ``<iframe srcdoc>`` (as a notebook shows it), with real clicks and typing; every request
the page makes is recorded and anything but file:/data:/about: is refused and reported."""

from __future__ import annotations

import html as _html
import json
import re
from pathlib import Path
from typing import Any, Dict, List

import pytest

from mcpprof.export import html
from mcpprof.model import CPU, SAMPLES, Frame, Profile, ProfileBuilder
from mcpprof.model import labels as L

pytestmark = pytest.mark.browser

EVIL = "<script>alert(1)</script>"
BOX_TEXTS = "Array.from(document.querySelectorAll('.fg-box')).map(b => b.textContent)"
STATE = """(() => {
  const chart = document.querySelector('.fg-chart');
  const boxes = Array.from(document.querySelectorAll('.fg-box'));
  const box = t => boxes.find(b => b.textContent === t);
  const width = t => box(t) ? box(t).getBoundingClientRect().width : null;
  return {chartWidth: chart.getBoundingClientRect().width, chartHeight: chart.getBoundingClientRect().height,
    boxes: boxes.length, texts: boxes.map(b => b.textContent).filter(Boolean),
    ancestors: boxes.filter(b => b.classList.contains('fg-anc')).map(b => b.textContent),
    matches: boxes.filter(b => b.classList.contains('fg-match')).map(b => b.textContent),
    resetDisabled: document.querySelector('.fg-reset').disabled,
    matched: document.querySelector('.fg-matched').textContent,
    details: document.querySelector('.fg-details').textContent,
    note: document.querySelector('.fg-note').textContent,
    scripts: document.querySelectorAll('script').length,
    widths: {forecast: width('get_forecast (server.py:41)'), parse: width('parse_grid (grid.py:17)')}};
})()"""


ROOT_TOP = ("Array.from(document.querySelectorAll('.fg-box')).find(b => b.textContent === 'all')"
            ".getBoundingClientRect().top - document.querySelector('.fg-chart').getBoundingClientRect().top")


def check_page(node_driver, tmp_path: Path, page: Path, steps: List[Dict[str, Any]], **size) -> Dict[str, Any]:
    steps_file = tmp_path / f"{page.stem}.steps.json"
    steps_file.write_text(json.dumps(steps))
    args = ["--steps", str(steps_file)]
    for k, v in size.items():
        args += [f"--{k}", str(v)]
    [result] = node_driver("page_check.mjs", *args, str(page))
    for i, r in enumerate(result["results"]):
        assert not (isinstance(r, dict) and "error" in r), (i, steps[i], r)
    assert result["consoleErrors"] == [] and result["pageErrors"] == [] and result["dialogs"] == [], result
    assert result["offHost"] == [], result
    return result


def matched_text(profile: Profile, pattern: str, value_type: str = "cpu") -> str:
    """What the page must show for a search: the share of samples whose stack (request level
    included) has a matching frame, each counted once however many frames match."""
    idx = profile.value_index(value_type)
    rx = re.compile(pattern)
    hit = total = 0
    for s, frames in profile.iter_stacks():
        names = ["all", L.request_name(dict(s.labels))] + [f"{f.function} ({f.file.rsplit('/', 1)[-1]}:{f.line})"
                                                           for f in frames]
        total += s.values[idx]
        if any(rx.search(n) for n in names):
            hit += s.values[idx]
    return "Matched: " + js_pct(100 * hit / total)


def js_pct(f: float) -> str:
    """A percentage as the page's script writes it."""
    return (f"{f:.3f}" if 0 < f < 0.1 else f"{f:.2f}" if f < 10 else f"{f:.1f}") + "%"


def test_flame_graph_in_chromium(workload, node_driver, tmp_path):
    page = tmp_path / "flamegraph.html"
    page.write_bytes(html.render(workload))
    shots = {name: tmp_path / f"flamegraph-{name}.png" for name in ("initial", "search", "zoomed", "wall")}
    steps = [
        {"op": "eval", "js": STATE},                                             # 0
        {"op": "screenshot", "path": str(shots["initial"]), "full_page": True},
        {"op": "click_text", "text": "get_forecast (server.py:41)"},
        {"op": "eval", "js": STATE},                                             # 3
        {"op": "hover_text", "text": "parse_grid (grid.py:17)"},
        {"op": "eval", "js": STATE},                                             # 5
        {"op": "eval", "js": "Array.from(document.querySelectorAll('.fg-box')).find(b => b.textContent === 'parse_grid (grid.py:17)').title"},
        {"op": "screenshot", "path": str(shots["zoomed"]), "full_page": True},
        {"op": "press", "key": "Escape"},
        {"op": "type", "selector": ".fg-search", "text": "parse_grid"},
        {"op": "eval", "js": STATE},                                             # 10
        {"op": "type", "selector": ".fg-search", "text": "grid|json"},
        {"op": "eval", "js": STATE},                                             # 12
        {"op": "screenshot", "path": str(shots["search"]), "full_page": True},
        {"op": "type", "selector": ".fg-search", "text": "(unclosed"},
        {"op": "eval", "js": STATE},                                             # 15
        {"op": "type", "selector": ".fg-search", "text": ""},
        {"op": "select", "selector": ".fg-type", "value": "2"},
        {"op": "eval", "js": STATE},                                             # 18
        {"op": "screenshot", "path": str(shots["wall"]), "full_page": True},
        {"op": "eval", "js": ROOT_TOP},                                          # 20
        {"op": "eval", "js": "document.querySelector('.fg-flip').click()"},
        {"op": "eval", "js": ROOT_TOP},                                          # 22
    ]
    result = check_page(node_driver, tmp_path, page, steps)
    r = result["results"]
    assert result["title"] == "mcpprof sampler profile"
    assert result["requests"] == [page.as_uri()]

    initial = r[0]
    for name in ("all", "tools/call get_forecast", "tools/call render_map", "(transport & dispatch)",
                 "get_forecast (server.py:41)", "parse_grid (grid.py:17)", "rasterise (maps.py:33)",
                 "Server._handle_request (mcp/server/lowlevel/server.py:701)",
                 f"tools/call {EVIL}", f"{EVIL} (server.py:99)"):
        assert name in initial["texts"], name
    assert initial["scripts"] == 2  # the hostile names added no script element (and no dialog opened)
    assert initial["resetDisabled"] and initial["ancestors"] == []
    assert initial["chartHeight"] == (max_depth(workload) + 1) * 18
    assert f"Total CPU: {workload.total('cpu') / 1e6:,.0f} ms" == "Total CPU: 1,550 ms"
    assert "Total CPU: 1,550 ms" in initial["note"]
    assert not any(t.startswith("/") or "/home/dev" in t for t in initial["texts"])

    zoomed = r[3]
    assert not zoomed["resetDisabled"]
    assert abs(zoomed["widths"]["forecast"] - (zoomed["chartWidth"] - 1)) < 1.5  # now full width
    assert "tools/call render_map" not in zoomed["texts"]  # siblings gone
    assert set(zoomed["ancestors"]) >= {"all", "tools/call get_forecast", "Tool.run (mcp/server/fastmcp/tools/base.py:92)"}
    assert zoomed["widths"]["parse"] > initial["widths"]["parse"] * 1.5
    details = r[5]["details"]
    assert details.startswith("parse_grid (grid.py:17) \u2014 420.0 ms (27.1% of total, 49.4% of zoomed)"), details
    assert r[6].startswith("parse_grid (grid.py:17)\n420.0 ms"), r[6]  # the tooltip

    assert r[10]["resetDisabled"]  # Esc reset the zoom
    assert r[10]["matched"] == matched_text(workload, "parse_grid") == "Matched: 37.4%"
    assert set(r[10]["matches"]) == {"parse_grid (grid.py:17)", "parse_grid (grid.py:21)"}
    assert r[12]["matched"] == matched_text(workload, "grid|json")  # nested matches counted once
    assert r[15]["matched"] == "invalid regular expression" and r[15]["matches"] == []

    wall = r[18]
    assert f"Total Wall: {workload.total('wall') / 1e6:,.0f} ms" in wall["note"] and wall["matched"] == ""
    flame, icicle = r[20], r[22]
    assert flame == max_depth(workload) * 18 and icicle == 0  # root at the bottom, then at the top
    for shot in shots.values():
        assert shot.stat().st_size > 5_000


def max_depth(profile: Profile) -> int:
    return max(len(profile.stacks[s.stack]) for s in profile.samples) + 1  # + the request level


def test_in_a_notebook_style_srcdoc_iframe(workload, node_driver, tmp_path):
    page = html.render(workload).decode()
    wrapper = tmp_path / "notebook.html"
    wrapper.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"></head><body>'
                       '<p>cell output:</p><iframe style="width:100%;height:120px;border:0" srcdoc="'
                       + _html.escape(page, quote=True) + '"></iframe><p>after</p></body></html>')
    shot = tmp_path / "notebook.png"
    steps = [
        {"op": "eval", "js": "document.querySelector('iframe').getBoundingClientRect().height"},
        {"op": "eval", "frame": 1, "js": STATE},
        {"op": "click_text", "frame": 1, "text": "tools/call render_map"},
        {"op": "eval", "frame": 1, "js": STATE},
        {"op": "type", "frame": 1, "selector": ".fg-search", "text": "render_map"},
        {"op": "eval", "frame": 1, "js": STATE},
        {"op": "screenshot", "path": str(shot), "full_page": True},
        {"op": "wait", "ms": 500},
        {"op": "eval", "js": "document.querySelector('iframe').getBoundingClientRect().height"},
        {"op": "eval", "frame": 1, "js": "document.querySelector('.mcpprof-flamegraph').getBoundingClientRect().bottom"},
    ]
    result = check_page(node_driver, tmp_path, wrapper, steps)
    r = result["results"]
    # the page sized its frame to its content (from 120 px), and keeps it there
    assert r[0] > r[1]["chartHeight"] + 60
    assert r[8] == r[0] and abs(r[8] - r[9]) <= 4
    assert f"tools/call {EVIL}" in r[1]["texts"]
    assert not r[3]["resetDisabled"] and "get_forecast (server.py:41)" not in r[3]["texts"]
    assert r[5]["matched"] == matched_text(workload, "render_map")
    assert result["requests"] == [wrapper.as_uri()]
    assert shot.stat().st_size > 5_000


def test_big_profile_draws_only_visible_boxes(node_driver, tmp_path):
    b = ProfileBuilder([SAMPLES, CPU])
    for i in range(20_000):  # 20,000 stacks, depth 12: pruned before embedding, culled when drawn
        stack = [Frame("main", "app.py", 1)] + [Frame(f"f{(i >> k) % 7}", "app.py", k + 2) for k in range(11)]
        b.add(stack, [1 + i % 5, 1_000_000 * (1 + i % 5)],
              {L.METHOD: "tools/call", L.TOOL: f"tool{i % 4}"})
    page = tmp_path / "big.html"
    profile = b.build()
    page.write_bytes(html.render(profile))
    data = html.island(profile)
    share = 100 * data["types"][data["default"]]["pruned"] / profile.total("cpu")
    steps = [
        {"op": "eval", "js": "[document.querySelectorAll('.fg-box').length, JSON.parse(document.querySelector('.fg-data').textContent).name.length]"},
        {"op": "eval", "js": "document.querySelector('.fg-note').textContent"},
        {"op": "type", "selector": ".fg-search", "text": "^f3 "},
        {"op": "eval", "js": "document.querySelector('.fg-matched').textContent"},
    ]
    result = check_page(node_driver, tmp_path, page, steps)
    drawn, nodes = result["results"][0]
    assert 0 < drawn <= nodes
    assert result["results"][1].startswith(
        f"{data['pruned_subtrees']:,} subtrees under 0.05% of the total merged into [pruned] boxes, "
        f"which hold {js_pct(share)} of CPU."), result["results"][1]
    assert result["results"][3].startswith("Matched: ")
