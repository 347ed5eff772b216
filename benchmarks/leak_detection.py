"""The leak detector's figures: calls needed to flag a 256-byte-per-call leak, and false positives
over clean and allocator-retention servers (tests/integration/leaky_servers/server.py).

Runs are interleaved (seeded shuffle of kinds); every run is a fresh server and a full
``mcpprof leaks`` job with the default rules and windows.

    python benchmarks/leak_detection.py --leak-runs 5 --clean-runs 20 --retention-runs 20 \
        --out benchmarks/results/leak_detection.jsonl

A script: prints JSON lines and a summary to stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcpprof.jobs.leaks import LeakJob, run_leak_job

SERVER = Path(__file__).resolve().parent.parent / "tests" / "integration" / "leaky_servers" / "server.py"
SEEDED = next(i for i, ln in enumerate(SERVER.read_text().splitlines(), 1) if "# SEEDED LEAK" in ln)


def one_run(kind: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_leak_job(LeakJob(command=[sys.executable, str(SERVER), kind], out_dir=str(Path(tmp) / "o")))
        wall = time.perf_counter() - t0
    return {"kind": kind, "wall_s": round(wall, 2), "tools": {
        r.tool: {"verdict": r.verdict, "flagged_after": r.flagged_after, "calls": r.calls,
                 "site": r.site.where if r.site else None, "bytes_per_call": r.bytes_per_call} for r in r_list(result)}}


def r_list(result: object) -> list:
    return list(result.results)  # type: ignore[attr-defined]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leak-runs", type=int, default=5)
    ap.add_argument("--clean-runs", type=int, default=20)
    ap.add_argument("--retention-runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    kinds = ["leak"] * args.leak_runs + ["clean"] * args.clean_runs + ["retention"] * args.retention_runs
    random.Random(args.seed).shuffle(kinds)
    sink = open(args.out, "a") if args.out else None
    runs = []
    for kind in kinds:
        row = one_run(kind)
        runs.append(row)
        print(json.dumps(row), flush=True)
        if sink:
            sink.write(json.dumps(row) + "\n")
            sink.flush()
    leak = [r["tools"]["leaky"] for r in runs if r["kind"] == "leak"]
    summary = {
        "summary": "leak_detection",
        "leak_runs": len(leak),
        "leak_flagged": sum(t["verdict"] == "leak" for t in leak),
        "leak_site_exact": sum(bool(t["site"]) and t["site"].endswith(f"server.py:{SEEDED}") for t in leak),
        "calls_to_flag": sorted(t["flagged_after"] for t in leak if t["flagged_after"]),
        "calls_to_flag_median": statistics.median([t["flagged_after"] for t in leak if t["flagged_after"]] or [0]),
        "other_tool_flagged": sum(r["tools"]["fine"]["verdict"] == "leak" for r in runs if r["kind"] == "leak"),
        "clean_runs": sum(r["kind"] == "clean" for r in runs),
        "clean_false_positives": sum(any(t["verdict"] == "leak" for t in r["tools"].values())
                                     for r in runs if r["kind"] == "clean"),
        "retention_runs": sum(r["kind"] == "retention" for r in runs),
        "retention_false_positives": sum(any(t["verdict"] == "leak" for t in r["tools"].values())
                                         for r in runs if r["kind"] == "retention"),
        "verdicts": {k: dict(sorted({v: sum(t["verdict"] == v for r in runs if r["kind"] == k
                                           for t in r["tools"].values())
                                     for v in ("leak", "filling", "inconclusive", "no leak")}.items()))
                     for k in ("leak", "clean", "retention")},
    }
    print(json.dumps(summary), flush=True)
    if sink:
        sink.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    sys.exit(main())
