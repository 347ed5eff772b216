"""Bench results, comparisons and leak reports show themselves in Jupyter (a real IPython shell):
an escaped table with its text beside it, the run's flame graph in an iframe (differential for a
comparison) and as PNG, DataFrames where pandas is installed."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import pytest

import mcpprof
from mcpprof.bench import results
from mcpprof.errors import UsageError
from mcpprof.model import CPU, SAMPLES, Frame, ProfileBuilder
from mcpprof.model import labels as L

pytest.importorskip("IPython")

EVIL = "<script>alert(1)</script>"
STEP = f"tools/call {EVIL}"


def bench_doc(tmp_path: Path, name: str, p50_ns: int, cpu_ms: int) -> Path:
    """A bench result as ``mcpprof bench --profile`` writes it: runs per workload, the profile."""
    b = ProfileBuilder([SAMPLES, CPU], {"collector": "sample"})
    main = [Frame("<module>", "/app/server.py", 1), Frame("handle", "/app/server.py", 10)]
    b.add(main + [Frame("parse", "/app/parse.py", 3)], [cpu_ms, cpu_ms * 1_000_000],
          {L.METHOD: "tools/call", L.TOOL: EVIL})
    b.add(main + [Frame("render", "/app/render.py", 7)], [20, 20_000_000], {L.METHOD: "tools/call", L.TOOL: "ok"})
    prof = tmp_path / f"{name}.mcpprof"
    mcpprof.save(b.build(), prof)
    doc = results.new_document({"command": ["python", "server.py"]})
    per_run = [{"latency_ns": {"p50": p50_ns + i, "p95": 2 * p50_ns, "p99": 3 * p50_ns},
                "throughput_per_s": 1e9 / p50_ns, "steps": {STEP: {"latency_ns": {"p50": p50_ns + i}}}}
               for i in range(10)]
    doc["workloads"] = [{"workload_id": "tool-simple", "per_run": per_run}]
    doc["profiles"] = {"candidate": [str(prof)]}
    path = tmp_path / f"{name}.json"
    results.write(doc, path)
    return path


def outputs(code: str, ns: dict):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    shell = InteractiveShell.instance()
    shell.user_ns.update(ns)
    with capture_output() as cap:
        shell.run_cell(code).raise_error()
    return [o.data for o in cap.outputs]


def srcdoc(page: str) -> str:
    return html.unescape(page.split('srcdoc="', 1)[1].split('"', 1)[0])


def test_bench_result_shows_table_flame_graph_and_png(tmp_path):
    result = mcpprof.load_bench(bench_doc(tmp_path, "new", 2_000_000, 60))
    assert isinstance(result, dict) and result["schema"] == "mcpprof.bench/1"  # still the document
    first, png = outputs("r", {"r": result})
    assert first["text/html"].startswith("<p>mcpprof bench of python server.py")
    assert "<td>tool-simple</td>" in first["text/html"] and "<iframe srcdoc=" in first["text/html"]
    assert "tools/call" in srcdoc(first["text/html"]) and EVIL not in first["text/html"]
    assert "p50_ms" in first["text/plain"] and "tool-simple" in first["text/plain"]
    assert base64.b64decode(png["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
    assert result._repr_png_()[:4] == b"\x89PNG"
    pd = pytest.importorskip("pandas")
    table = result.table()
    assert isinstance(table, pd.DataFrame) and table.loc["tool-simple", "runs"] == 10
    assert table.loc["tool-simple", "p50_ms"] == pytest.approx(2.0, abs=0.01)


def test_comparison_shows_verdicts_and_a_differential_flame_graph(tmp_path):
    base = bench_doc(tmp_path, "base", 2_000_000, 20)
    new = bench_doc(tmp_path, "new", 2_600_000, 80)
    comparison = mcpprof.compare(base, new)
    assert comparison["exit_code"] == 1 and [r["verdict"] for r in comparison["results"]] == ["regressed"]
    first, png = outputs("c", {"c": comparison})
    page = first["text/html"]
    assert "REGRESSION (exit 1)" in page and "+30.0%" in page and "color:#b3261e" in page
    assert html.escape(STEP) in page and EVIL not in page
    assert "fg-diff" in srcdoc(page)  # the differential flame graph of the two profiled runs
    assert "regressed" in first["text/plain"] and "image/png" in png
    assert mcpprof.compare(base, base)["exit_code"] == 0
    # a result document carrying a comparison (mcpprof compare -o) gives it back
    results.write(dict(results.load(new), comparison=dict(comparison)), tmp_path / "c.json")
    carried = mcpprof.load_bench(tmp_path / "c.json").comparison
    assert carried is not None and carried.rows()[0]["verdict"] == "regressed"


def test_leak_report_shows_verdicts_and_growth_flame_graph(tmp_path):
    data = {"server": {}, "tools": [
        {"tool": EVIL, "verdict": "leak", "bytes_per_call": 4096.0, "objects_per_call": 1.0, "calls": 300,
         "site": {"where": "make_chunks (server.py:52)"}},
        {"tool": "echo", "verdict": "no leak", "bytes_per_call": 0.0, "objects_per_call": 0.0, "calls": 300}]}
    (tmp_path / "leaks.json").write_text(json.dumps(data))
    b = ProfileBuilder([SAMPLES, CPU], {"collector": "tracemalloc"})
    b.add([Frame("make_chunks", "/app/server.py", 52)], [3, 12_288], {L.METHOD: "tools/call", L.TOOL: EVIL})
    mcpprof.save(b.build(), tmp_path / "leaks.mcpprof")
    report = mcpprof.load_leaks(tmp_path)
    first, png = outputs("r", {"r": report})
    assert first["text/html"].startswith(f"<p>leaking: {html.escape(EVIL)}</p>")
    assert "make_chunks" in srcdoc(first["text/html"]) and EVIL not in first["text/html"]
    assert "no leak" in first["text/plain"] and "image/png" in png
    pd = pytest.importorskip("pandas")
    assert report.table().loc["echo", "verdict"] == "no leak"
    with pytest.raises(UsageError):
        mcpprof.load_leaks(tmp_path / "missing")


def test_leak_job_result_object_displays_as_a_report(tmp_path):
    from mcpprof.analyse.leaks import ToolResult
    from mcpprof.jobs.leaks import LeakJobResult

    shown = outputs("%load_ext mcpprof\nr", {"r": LeakJobResult([ToolResult("echo", "no leak", [100, 100])],
                                                                str(tmp_path), {}, {})})
    assert len(shown) == 1 and "<td>echo</td>" in shown[0]["text/html"] and "no tool leaks" in shown[0]["text/plain"]
