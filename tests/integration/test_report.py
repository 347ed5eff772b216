"""``report.html`` from a real ``mcpprof profile`` run, and ``mcpprof report DIR|FILE`` with a
baseline, leak verdicts, memory extras and a hostile tool name."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mcpprof
from mcpprof.model import CPU, INUSE_SPACE, SAMPLES, Frame, ProfileBuilder, RequestTable
from mcpprof.model import labels as L
from mcpprof.report import load_inputs, render_report

EVIL = "<script>alert(1)</script>"
URL = re.compile(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", re.I)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mcpprof", *args], capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def profile_dir(tmp_path_factory) -> Path:
    pytest.importorskip("mcp")
    out = tmp_path_factory.mktemp("prof") / "out"
    proc = run_cli("profile", "--seconds", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out


def assert_self_contained(page: str) -> None:
    assert not URL.search(page), URL.search(page)
    assert "default-src 'none'" in page  # the CSP forbids every fetch
    assert EVIL not in page


def test_profile_job_writes_the_report(profile_dir: Path):
    page = (profile_dir / "report.html").read_text()
    assert_self_contained(page)
    assert "tools/call cpu_sync" in page and 'class="tools"' in page
    assert page.count('class="mcpprof-flamegraph"') >= 3  # the whole profile plus per-request views
    assert "Latency histograms" in page and "<svg" in page
    assert "Benchmark figures" in page  # bench.json of the drive


def test_views_share_one_script_and_one_name_table(profile_dir: Path):
    """The flame-graph script is inlined once for every view, and the views of one profile keep only
    indices into one table of frame names (views repeat most of their names)."""
    page = (profile_dir / "report.html").read_text()
    assert page.count("mcpprofFlameUtil.island(root)") == 1
    islands = [json.loads(m) for m in re.findall(
        r'<script type="application/json" class="fg-data">(.*?)</script>', page, re.S)]
    tables = dict(re.findall(r'<script type="application/json" class="fg-names" id="([^"]+)">(.*?)</script>',
                             page, re.S))
    assert len(islands) > 2 and "cpu-names" in tables
    shared = {ref: json.loads(t) for ref, t in tables.items()}
    for data in islands:
        assert "names" not in data and data["names_ref"] in shared
        names = shared[data["names_ref"]]["names"]
        assert max(data["name"]) < len(names)
    cpu = shared["cpu-names"]
    assert len(set(zip(cpu["names"], cpu["kinds"]))) == len(cpu["names"])  # each name once
    assert any(n.startswith("tools/call ") for n in cpu["names"])


def hostile_profile(cpu_per_call: int):
    b = ProfileBuilder([SAMPLES, CPU], {"collector": "sample"})
    stack = [Frame("<module>", "/srv/app/server.py", 1), Frame(EVIL, "/srv/app/<evil>.py", 2)]
    b.add(stack, [10, 10 * cpu_per_call], {L.METHOD: "tools/call", L.TOOL: EVIL, L.THREAD_NAME: EVIL})
    b.add(stack[:1], [5, 5 * cpu_per_call], {L.METHOD: "tools/call", L.TOOL: "ok", L.THREAD_NAME: "MainThread"})
    p = b.build()
    t = RequestTable()
    for i in range(10):
        t.record("tools/call", EVIL, cpu_per_call + i, request_id=f"{EVIL}{i}", start_ns=1_000 + i)
        t.record("tools/call", "ok", cpu_per_call // 2 + i, request_id=str(i))
    p.requests = t
    p.extras["memory_timeline"] = {"columns": ["t_s", "rss", "traced", "requests"],
                                   "points": [[0.0, 1 << 20, -1, 0], [1.0, 2 << 20, -1, 10], [2.0, 3 << 20, -1, 20]]}
    p.extras["process_memory"] = {"figures": {"rss": 3 << 20, "fragmentation": 0.25, EVIL: 1},
                                  "definitions": {"rss": "resident set size"}, "unavailable": {EVIL: EVIL}}
    p.extras["gc_pauses"] = {"events": [[0, 0, 1000, 3, 0, EVIL]], "totals": {"0": {"count": 1, "max_ns": 1000}},
                             "by_request": {EVIL: {"count": 1, "total_ns": 1000}}}
    return p


def test_report_of_a_folder_with_leaks_memory_and_a_baseline(tmp_path: Path):
    folder = tmp_path / "run"
    folder.mkdir()
    mcpprof.save(hostile_profile(2_000_000), folder / "profile.mcpprof")
    mb = ProfileBuilder([INUSE_SPACE], {"collector": "tracemalloc"})
    mb.add([Frame(EVIL, "/srv/app/x.py", 3)], [4096], {L.METHOD: "tools/call", L.TOOL: EVIL})
    mcpprof.save(mb.build(), folder / "leaks.mcpprof")
    (folder / "leaks.json").write_text(json.dumps({"server": {}, "tools": [
        {"tool": EVIL, "verdict": "leak", "bytes_per_call": 1024.0, "objects_per_call": 1.0, "calls": 10,
         "site": {"file": "/srv/app/x.py", "line": 3, "where": "/srv/app/x.py:3"}, "evidence": [EVIL]}]}))
    base = tmp_path / "base.mcpprof"
    mcpprof.save(hostile_profile(1_000_000), base)

    proc = run_cli("report", str(folder), "--baseline", str(base), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    page = Path(out["report"]).read_text()
    assert Path(out["report"]) == folder / "report.html"
    assert_self_contained(page)
    for heading in ("Against the baseline", "Memory flame graph", "Leak verdicts", "Memory and request rate",
                    "Process memory, fragmentation and GC", "Slowest requests"):
        assert heading in page, heading
    assert "leak verdict" in page and "retained/call" in page and "1.00 KiB" in page
    assert "+100%" in page  # CPU per call doubled against the baseline
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # where the time went: the differential flame graph, drawn by the page's one flame-graph script
    assert "differential flame graph against the baseline" in page
    assert page.count('class="mcpprof-flamegraph fg-diff"') == 1
    assert page.count("<script>") == 2  # the flame graph script and the view switcher, once each


def test_report_of_a_file_and_errors(tmp_path: Path, profile_dir: Path):
    src = tmp_path / "p.mcpprof"
    shutil.copy(profile_dir / "profile.mcpprof", src)
    proc = run_cli("report", str(src))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "p.report.html").is_file()
    assert "report:" in proc.stderr and proc.stdout == ""
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = run_cli("report", str(empty))
    assert proc.returncode == 2 and "no .mcpprof profile" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_render_report_from_inputs_is_deterministic_in_content(profile_dir: Path):
    inputs = load_inputs(profile_dir)
    assert inputs.bench is not None and inputs.profile.requests is not None
    a = render_report(inputs).decode()
    assert a.startswith("<!DOCTYPE html>") and a.rstrip().endswith("</html>")
