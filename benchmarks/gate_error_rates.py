"""Error rates of mcpprof's default regression gate (duet, median per-run p50 ratio > 1.05 AND
one-sided Wilcoxon p < 0.05) on the bundled example server, over independent trials.

* A/A trial: baseline and candidate are the same example server.
* A/B trial: the candidate is ``tests/integration/bench_slow_server.py``, the example server with
  ``echo`` slowed by a busy wait. The wait is calibrated once at the start to ``--slowdown`` (10 %)
  of the duet baseline's median echo p50 measured in a calibration duet, so "10 % slower" holds on
  whatever this machine's load is; the realised median ratio of every A/B trial is reported too.

Every trial is a fresh duet of ``--runs`` runs (fresh server pair per run, ``--requests`` calls
per side); A/A and A/B trials are interleaved in random order, so both see the same drift.

    python benchmarks/gate_error_rates.py [--trials 20] [--runs 7] [--requests 600] [--slowdown 0.10]

One JSON object per line on stdout (calibration, trials, summary).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
from dataclasses import replace

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, ROOT)

from mcpprof.bench import catalogue  # noqa: E402
from mcpprof.bench.duet import duet_workload, paired_p50s  # noqa: E402
from mcpprof.bench.gate import Rule, compare_paired  # noqa: E402
from mcpprof.bench.workload import Target  # noqa: E402

ENV = {"PYTHONPATH": ROOT}
EXAMPLE = Target(command=[sys.executable, "-m", "mcpprof.examples.server", "--max-seconds", "600"], env=ENV)
SLOW = os.path.join(ROOT, "tests", "integration", "bench_slow_server.py")


def slow_target(us: float) -> Target:
    return Target(command=[sys.executable, SLOW, "--slow-us", f"{us:.1f}", "--max-seconds", "600"], env=ENV)


async def trial(candidate: Target, workload, runs: int, seed: int, rule: Rule) -> dict:
    entries, _ = await duet_workload(EXAMPLE, candidate, workload, runs, seed)
    comparison = compare_paired(paired_p50s(entries), rule)
    r = comparison["results"][0]
    base_p50 = statistics.median(r["baseline_p50_ns"])
    return {"verdict": r["verdict"], "fired": r["verdict"] == "regressed", "ratio": r["ratio"], "p": r["p"],
            "spread": r["spread"], "baseline_p50_us": round(base_p50 / 1e3, 1), "reason": r["reason"],
            "per_run_ratios": r["per_run_ratios"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--slowdown", type=float, default=0.10)
    ap.add_argument("--slow-us", type=float, default=None, help="skip calibration: this many µs")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kinds", default="aa,ab", help="which trials: aa, ab or both")
    a = ap.parse_args()
    rule = Rule()
    workload = replace(catalogue.get("tool-simple"), requests=a.requests, warmup=a.warmup)
    slow_us = a.slow_us
    if slow_us is None:
        cal = asyncio.run(trial(EXAMPLE, workload, 5, a.seed - 1, rule))
        slow_us = a.slowdown * cal["baseline_p50_us"]
        print(json.dumps({"calibration": cal, "slow_us": round(slow_us, 1)}), flush=True)
    kinds = [k for k in ("aa", "ab") if k in a.kinds.split(",") for _ in range(a.trials)]
    rng = random.Random(a.seed)
    rng.shuffle(kinds)
    rows = {"aa": [], "ab": []}
    for i, kind in enumerate(kinds):
        t0 = time.monotonic()
        cand = EXAMPLE if kind == "aa" else slow_target(slow_us)
        row = asyncio.run(trial(cand, workload, a.runs, a.seed * 1000 + i, rule))
        row.update(trial=i, kind=kind, seconds=round(time.monotonic() - t0, 1), load1=round(os.getloadavg()[0], 2))
        rows[kind].append(row)
        print(json.dumps(row), flush=True)
    summary = {"summary": True, "runs": a.runs, "requests": a.requests, "slow_us": round(slow_us, 1),
               "rule": rule.to_dict(),
               "aa_false_alarms": f"{sum(r['fired'] for r in rows['aa'])}/{len(rows['aa'])}",
               "aa_inconclusive": f"{sum(r['verdict'] == 'inconclusive' for r in rows['aa'])}/{len(rows['aa'])}",
               "ab_detected": f"{sum(r['fired'] for r in rows['ab'])}/{len(rows['ab'])}",
               "ab_inconclusive": f"{sum(r['verdict'] == 'inconclusive' for r in rows['ab'])}/{len(rows['ab'])}",
               "ab_median_ratio": statistics.median(r["ratio"] for r in rows["ab"]) if rows["ab"] else None,
               "ab_realised_median_per_run_ratio": statistics.median(x for r in rows["ab"] for x in r["per_run_ratios"])
               if rows["ab"] else None,
               "aa_median_ratio": statistics.median(r["ratio"] for r in rows["aa"]) if rows["aa"] else None}
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
