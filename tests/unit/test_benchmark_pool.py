"""benchmarks/pool.py: runs split at their summaries, windows paired within their round, the
median and its set-level bootstrap (folded JSONL fixtures, no benchmark run)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

POOL = Path(__file__).resolve().parents[2] / "benchmarks" / "pool.py"


@pytest.fixture(scope="module")
def pool():
    spec = importlib.util.spec_from_file_location("bench_pool", POOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(run_sets: int, ratio: float, base: float = 1000.0):
    rows = []
    for s in range(run_sets):
        for r in range(3):
            rows.append({"mode": "none", "throughput": base, "set": s, "round": r})
            rows.append({"mode": "sample@100", "throughput": base * ratio, "set": s, "round": r})
    return rows


def _write(path: Path, runs):
    with path.open("w") as fh:
        for rows in runs:
            for row in rows:
                fh.write(json.dumps(row) + "\n")
            fh.write(json.dumps({"summary": "none", "windows": len(rows) // 2}) + "\n")
            fh.write(json.dumps({"summary": "sample@100", "windows": len(rows) // 2}) + "\n")


def test_runs_are_split_at_their_summaries_and_paired_per_round(pool, tmp_path):
    path = tmp_path / "r.jsonl"
    _write(path, [_rows(2, 0.98), _rows(3, 0.96)])
    runs = pool.runs_of(str(path))
    assert [len(r) for r in runs] == [12, 18]
    pairs = list(pool.paired(runs, "sample@100"))
    assert len(pairs) == 15
    # set 0 of the first run and set 0 of the second are different sets
    assert len({key for key, _ in pairs}) == 5
    assert sorted({round(x, 4) for _, x in pairs}) == [0.96, 0.98]


def test_pooled_median_and_bootstrap(pool, tmp_path):
    path = tmp_path / "r.jsonl"
    _write(path, [_rows(2, 0.98), _rows(3, 0.96)])
    result = pool.pool(pool.runs_of(str(path)), "sample@100", resamples=400)
    assert result["windows"] == 15 and result["sets"] == 5 and result["runs"] == 2
    assert result["median_paired_ratio"] == 0.96 and result["overhead_pct"] == 4.0
    low, high = result["boot95"]
    assert 0.96 <= low <= result["median_paired_ratio"] <= high <= 0.98


def test_last_runs_and_missing_mode(pool, tmp_path):
    path = tmp_path / "r.jsonl"
    _write(path, [_rows(2, 0.90), _rows(2, 0.99)])
    runs = pool.runs_of(str(path))[-1:]
    assert pool.pool(runs, "sample@100", resamples=50)["median_paired_ratio"] == 0.99
    assert pool.pool(runs, "sample@1000") is None
