"""The result schema: percentiles, the document's shape, reading and writing, baseline pointers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcpprof.bench import results
from mcpprof.errors import UsageError


def test_nearest_rank_percentiles_are_integers():
    values = list(range(1, 101))  # 1..100 ns
    stats = results.latency_stats(reversed(values))
    assert stats == {"min": 1, "p50": 50, "p90": 90, "p95": 95, "p99": 99, "max": 100, "mean": 50}
    assert all(isinstance(v, int) for v in stats.values())
    assert results.latency_stats([7]) == {"min": 7, "p50": 7, "p90": 7, "p95": 7, "p99": 7, "max": 7, "mean": 7}
    assert results.latency_stats([]) is None
    assert results.percentile([10, 20, 30], 50) == 20 and results.percentile([10, 20], 50) == 10


def test_summary_is_over_runs_never_percentiles_of_percentiles():
    runs = [{"latency_ns": {"p50": p, "p99": 10 * p, "mean": p}, "throughput_per_s": 100.0,
             "server_cpu_ns_per_req": None, "client_cpu_ns_per_req": 30_000} for p in (100, 300, 200)]
    s = results.summarize_runs(runs)
    assert s["latency_ns.p50"]["median"] == 200 and s["latency_ns.p50"]["min"] == 100
    assert "server_cpu_ns_per_req" not in s and s["client_cpu_ns_per_req"]["median"] == 30_000


def test_document_round_trip(tmp_path: Path):
    doc = results.new_document({"transport": "stdio", "command": ["x"], "url": None})
    doc["workloads"].append({"workload_id": "tool-simple", "per_run": [
        {"steps": {"tools/call echo": {"latency_ns": {"p50": 5}}}},
        {"steps": {"tools/call echo": {"latency_ns": None}}}]})
    results.finish_document(doc)
    assert doc["schema"] == "mcpprof.bench/1" and "load1_end" in doc["environment"]
    path = tmp_path / "sub" / "r.json"
    results.write(doc, path)
    back = results.load(path)
    assert back == json.loads(json.dumps(doc))
    assert results.step_p50s(back["workloads"][0]) == {"tools/call echo": [5]}


@pytest.mark.parametrize("content,fragment", [
    ("not json", "is not JSON"),
    ('{"schema": "other/1"}', "is not an mcpprof bench result"),
    ('[1, 2]', "is not an mcpprof bench result"),
    ('{"schema": "mcpprof.bench/1", "workloads": [{"per_run": []}]}', "workload_id"),
])
def test_bad_result_files(tmp_path: Path, content: str, fragment: str):
    p = tmp_path / "r.json"
    p.write_text(content)
    with pytest.raises(UsageError, match=fragment):
        results.load(p)
    with pytest.raises(UsageError, match="does not exist"):
        results.load(tmp_path / "missing.json")


def test_git_revision_outside_a_repository(tmp_path: Path):
    assert results.git_revision(str(tmp_path)) is None


def test_baseline_pointer(tmp_path: Path):
    from mcpprof.cli.baseline import POINTER_SCHEMA, resolve_pointer

    (tmp_path / "main_2026-01-01.json").write_text("{}")
    (tmp_path / "main_latest.json").write_text(json.dumps({"schema": POINTER_SCHEMA, "path": "main_2026-01-01.json"}))
    assert resolve_pointer(str(tmp_path / "main_latest.json")) == str(tmp_path / "main_2026-01-01.json")
    assert resolve_pointer(str(tmp_path / "main_2026-01-01.json")) == str(tmp_path / "main_2026-01-01.json")
    (tmp_path / "dangling.json").write_text(json.dumps({"schema": POINTER_SCHEMA, "path": "gone.json"}))
    with pytest.raises(UsageError, match="does not exist"):
        resolve_pointer(str(tmp_path / "dangling.json"))
