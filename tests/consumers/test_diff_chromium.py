"""The differential flame graph in headless Chromium: the page ``mcpprof diff A B -o diff.html``
writes, opened from file:// and used as a person would (hover, clicks, the selectors), with no
console errors and no off-host requests; and the same graph inside the report with a baseline.

The profiles are the unit tests' (tests/unit/test_export_diff.py), in milliseconds: a run twice as
long, where ``dumps`` grew in share (40% -> 60%), ``tools/call fetch`` grew in value but shrank in
share (30% -> 20%), ``gone`` is only in the base, ``added`` only in the new run, and a tool is
named ``<script>alert(1)</script>``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Tuple

import pytest

import mcpprof
from mcpprof.analyse.ops import scale
from mcpprof.report import render_report
from tests.unit.test_export_diff import diff_pair

from .test_html_chromium import EVIL, check_page

pytestmark = pytest.mark.browser

STATE = """(() => {
  const root = document.querySelector('.mcpprof-flamegraph.fg-diff');
  const boxes = Array.from(root.querySelectorAll('.fg-box'));
  const bg = {};
  boxes.forEach(b => { if (b.textContent) bg[b.textContent] = getComputedStyle(b).backgroundColor; });
  const fetch = boxes.find(b => b.textContent === 'tools/call fetch');
  return {boxes: boxes.length, bg: bg,
    fetchBg: fetch ? getComputedStyle(fetch).backgroundColor : null,
    side: root.querySelector('.fg-side').value, norm: root.querySelector('.fg-norm').checked,
    gone: root.querySelector('.fg-gone').hidden ? null : root.querySelector('.fg-gone').textContent,
    requests: Array.from(root.querySelectorAll('.fg-req option')).map(o => [o.value, o.textContent]),
    request: root.querySelector('.fg-req').value,
    reset: root.querySelector('.fg-reset').disabled,
    details: root.querySelector('.fg-details').textContent,
    matched: root.querySelector('.fg-matched').textContent,
    note: root.querySelector('.fg-note').textContent,
    legend: root.querySelector('.fg-legend').textContent,
    scripts: document.querySelectorAll('script:not([type])').length};
})()"""


def rgb(text: str) -> Tuple[int, int, int]:
    r, g, b = map(int, re.findall(r"\d+", text)[:3])
    return r, g, b


def red(text: str) -> bool:
    r, g, b = rgb(text)
    return r == 255 and g == b and g < 236


def blue(text: str) -> bool:
    r, g, b = rgb(text)
    return b == 255 and r == g and r < 236


@pytest.fixture
def sides(tmp_path: Path) -> Tuple[Path, Path]:
    base, new = (scale(p, 1_000_000) for p in diff_pair())  # CPU in milliseconds
    mcpprof.save(base, tmp_path / "base.mcpprof")
    mcpprof.save(new, tmp_path / "new.mcpprof")
    return tmp_path / "base.mcpprof", tmp_path / "new.mcpprof"


def test_diff_page_from_the_cli_in_chromium(node_driver, tmp_path: Path, sides):
    page = tmp_path / "diff.html"
    proc = subprocess.run([sys.executable, "-m", "mcpprof", "diff", str(sides[0]), str(sides[1]), "-o", str(page)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    assert "wrote" in proc.stderr and page.is_file()
    shots = {n: tmp_path / f"diff-{n}.png" for n in ("initial", "base")}
    steps = [
        {"op": "eval", "js": STATE},                                                         # 0
        {"op": "screenshot", "path": str(shots["initial"]), "full_page": True},
        {"op": "hover_text", "text": "dumps (j.py:2)"},
        {"op": "eval", "js": STATE},                                                         # 3
        {"op": "hover_text", "text": "tools/call fetch"},
        {"op": "eval", "js": STATE},                                                         # 5
        {"op": "eval", "js": "document.querySelector('.fg-norm').click()"},
        {"op": "hover_text", "text": "tools/call fetch"},
        {"op": "eval", "js": STATE},                                                         # 8
        {"op": "eval", "js": "document.querySelector('.fg-norm').click()"},
        {"op": "type", "selector": ".fg-search", "text": "dumps"},
        {"op": "eval", "js": STATE},                                                         # 11
        {"op": "type", "selector": ".fg-search", "text": ""},
        {"op": "click_text", "text": "echo (a.py:5)"},
        {"op": "eval", "js": STATE},                                                         # 14
        {"op": "press", "key": "Escape"},
        {"op": "eval", "js": "document.querySelector('.fg-gone-item').click()"},
        {"op": "hover_text", "text": "gone (a.py:9)"},
        {"op": "eval", "js": STATE},                                                         # 18
        {"op": "screenshot", "path": str(shots["base"]), "full_page": True},
    ]
    result = check_page(node_driver, tmp_path, page, steps)
    r = result["results"]
    assert result["requests"] == [page.as_uri()] and result["dialogs"] == []

    first = r[0]
    assert first["scripts"] == 1 and first["side"] == "new" and first["norm"] and first["reset"]
    assert red(first["bg"]["dumps (j.py:2)"]), first["bg"]           # grew in share
    assert blue(first["fetchBg"]), first["fetchBg"]                  # shrank in share
    assert red(first["bg"]["added (a.py:3)"])                        # only in the new run
    assert "gone (a.py:9)" not in first["bg"]                        # no width in the new run...
    assert first["gone"].startswith("Only in base") and "gone (a.py:9) \u2014 40.0 ms (8.00% of base)" in first["gone"]
    assert first["legend"] == "grew shrank unchanged "
    assert "compare by share" in first["note"] and "Total CPU: base 500.0 ms, new 1,000 ms" in first["note"]
    options = dict(first["requests"])
    assert options["0"] == "All requests" and "tools/call fetch" in options.values()
    assert f"tools/call {EVIL}" in options.values()                   # the hostile name as text

    assert r[3]["details"] == ("dumps (j.py:2) \u2014 base 200.0 ms (40.0% of total) \u2192 "
                               "new 600.0 ms (60.0% of total), share +50.0%"), r[3]["details"]
    assert r[5]["details"].endswith("(30.0% of total) \u2192 new 200.0 ms (20.0% of total), share -33.3%; "
                                    "self 0.00 ms \u2192 0.00 ms"), r[5]["details"]
    # absolute values: fetch grew (150 -> 200 ms)
    assert not r[8]["norm"] and red(r[8]["fetchBg"])
    assert r[8]["details"].endswith("value +33.3%; self 0.00 ms \u2192 0.00 ms"), r[8]["details"]
    assert "absolute, not normalised" in r[8]["note"]
    assert r[11]["matched"] == "Matched: 60.0%"                       # of the new run
    zoomed = r[14]
    assert not zoomed["reset"] and zoomed["request"] == next(v for v, t in first["requests"] if t == "tools/call echo")
    # ...but shown with widths from the base, in blue, and explained on hover
    base = r[18]
    assert base["side"] == "base" and blue(base["bg"]["gone (a.py:9)"]) and base["gone"] is None
    assert base["details"].startswith("gone (a.py:9) \u2014 base 40.0 ms") and base["details"].endswith("only in base")
    for shot in shots.values():
        assert shot.stat().st_size > 5_000


def test_report_with_a_baseline_draws_the_diff(node_driver, tmp_path: Path, sides):
    base, new = (mcpprof.load(p) for p in sides)
    page = tmp_path / "report.html"
    page.write_bytes(render_report(new, baseline=base))
    shot = tmp_path / "report-diff.png"
    steps = [
        {"op": "eval", "js": STATE},
        {"op": "eval", "js": "document.querySelectorAll('.mcpprof-flamegraph[data-fg-drawn]').length"},
        {"op": "eval", "js": "document.querySelectorAll('.mcpprof-flamegraph').length"},
        {"op": "screenshot", "path": str(shot), "full_page": True},
    ]
    result = check_page(node_driver, tmp_path, page, steps, width=1300, height=900)
    state, drawn, graphs = result["results"][:3]
    assert state["scripts"] == 2 and drawn == graphs > 2  # one script drew every graph of the page
    assert red(state["bg"]["dumps (j.py:2)"]) and blue(state["fetchBg"])
    assert result["dialogs"] == [] and result["requests"] == [page.as_uri()]
    assert shot.stat().st_size > 20_000
