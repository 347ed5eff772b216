"""The HTML report in headless Chromium: opened from file:// with no console errors and no off-host
requests, the per-tool table and the flame graph on screen, the per-tool / per-thread selector
switching views, and a tool named ``<script>alert(1)</script>`` shown as text (no dialog)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from mcpprof.model import RequestTable
from mcpprof.report import render_report

from .test_html_chromium import EVIL, check_page

pytestmark = pytest.mark.browser

PAGE_STATE = """(() => {
  const visible = el => !!el && el.getClientRects().length > 0 && !el.closest('[hidden]');
  const views = Array.from(document.querySelectorAll('#cpu-views > .fg-view'));
  const shown = views.filter(v => !v.hidden);
  const boxes = shown.length ? Array.from(shown[0].querySelectorAll('.fg-box')) : [];
  const table = document.querySelector('table.tools');
  return {
    toolNames: Array.from(table.querySelectorAll('tbody tr td:first-child')).map(td => td.textContent),
    tableVisible: visible(table),
    views: views.length, shown: shown.length,
    shownTitle: shown.length ? shown[0].querySelector('.fg-title').textContent : null,
    boxes: boxes.length, boxTexts: boxes.map(b => b.textContent).filter(Boolean),
    chartWidth: shown.length ? shown[0].querySelector('.fg-chart').getBoundingClientRect().width : 0,
    options: Array.from(document.querySelectorAll('#cpu option')).map(o => o.textContent),
    svgCharts: document.querySelectorAll('svg.chart').length,
    injected: document.querySelectorAll('script:not([type])').length,
  };
})()"""


@pytest.fixture(scope="module")
def example_profile_dir(tmp_path_factory) -> Path:
    """A real ``mcpprof profile`` run of the bundled example server (2 s)."""
    pytest.importorskip("mcp")
    out = tmp_path_factory.mktemp("profile") / "out"
    proc = subprocess.run([sys.executable, "-m", "mcpprof", "profile", "--seconds", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def _profile_with_requests(workload):
    rng = random.Random(7)
    table = RequestTable()
    for name, n, mu in (("get_forecast", 300, 16.5), ("get_alerts", 120, 15.0), ("render_map", 80, 17.0),
                        (EVIL, 40, 14.0)):
        for i in range(n):
            table.record("tools/call", name, int(rng.lognormvariate(mu, 0.6)), "tool" if i % 17 == 0 else None,
                         f"{name[:3]}-{i}", 1_000_000_000 + i * 5_000_000)
    workload.requests = table
    workload.extras["memory_timeline"] = {
        "columns": ["t_s", "rss", "traced", "gc_gen0", "gc_gen1", "gc_gen2", "requests"],
        "points": [[i * 0.5, 40_000_000 + i * 250_000, -1, 10, 0, 0, i * 27] for i in range(24)]}
    return workload


def test_report_opens_offline_shows_table_and_flame_graph(node_driver, tmp_path: Path, workload):
    profile = _profile_with_requests(workload)
    page = tmp_path / "report.html"
    page.write_bytes(render_report(profile))
    shot = tmp_path / "report.png"
    steps = [
        {"op": "eval", "js": PAGE_STATE},
        {"op": "screenshot", "path": str(shot), "full_page": True},
        {"op": "select", "selector": "#cpu", "value": "1"},
        {"op": "wait", "ms": 200},
        {"op": "eval", "js": PAGE_STATE},
    ]
    result = check_page(node_driver, tmp_path, page, steps, width=1300, height=900)
    first, after = result["results"][0], result["results"][4]
    # the table, with the hostile tool name as literal text
    assert first["tableVisible"]
    assert "tools/call get_forecast" in first["toolNames"]
    assert f"tools/call {EVIL}" in first["toolNames"]
    assert result["dialogs"] == []
    # the report's scripts are its own: the flame graph script (once, for every view) and the
    # switcher (none injected)
    assert first["injected"] == 2 and first["views"] > 2
    # the flame graph: one view shown, drawn at the page width, with the requests as boxes
    assert first["shown"] == 1 and first["boxes"] > 10 and first["chartWidth"] > 800
    assert "tools/call get_forecast" in first["boxTexts"]
    # a selector per request and per thread
    assert "tools/call get_forecast" in first["options"]
    assert "AnyIO worker thread" in first["options"]
    assert f"tools/call {EVIL}" in first["options"]
    # switching to a view redraws it at full width
    assert after["shown"] == 1 and after["shownTitle"] != first["shownTitle"]
    assert after["chartWidth"] > 800 and after["boxes"] > 3
    # histograms and the timelines are inline SVG
    assert first["svgCharts"] >= 4
    assert shot.stat().st_size > 20_000


def test_report_of_a_real_profile_folder(node_driver, tmp_path: Path, example_profile_dir: Path):
    """The report ``mcpprof profile`` wrote for the bundled example server opens cleanly."""
    page = example_profile_dir / "report.html"
    assert page.is_file()
    steps = [{"op": "eval", "js": PAGE_STATE}]
    result = check_page(node_driver, tmp_path, page, steps, width=1300, height=900)
    state = result["results"][0]
    assert any(n.startswith("tools/call ") for n in state["toolNames"])
    assert state["boxes"] > 5
