"""Pool the paired windows of several ``overhead.py`` runs into one figure per mode.

One run's median paired ratio moves by a point or two from run to run on this machine (its
bootstrap interval is about as wide), so figures that must be read to a point are pooled over
runs of the same code: every window's ratio mode/none (paired within its round), the median over
all of them, and a 95 % bootstrap interval of that median that resamples whole sets (a set is one
group of fresh server processes, so windows of one set are not independent).

A results file holds runs one after another; a run ends with its summary lines. ``--last N``
takes the last N runs of each file (all by default).

    python benchmarks/pool.py benchmarks/results/overhead_context.jsonl --last 6 --modes sample@100,sample@1

Prints one JSON line per mode on stdout.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

Run = List[dict]


def runs_of(path: str) -> List[Run]:
    """The runs in one results file, in order (window rows only)."""
    runs: List[Run] = []
    current: Run = []
    with open(path) as fh:
        for line in fh:
            row = json.loads(line)
            if "summary" in row:
                if current:
                    runs.append(current)
                    current = []
            elif "mode" in row:
                current.append(row)
    if current:
        runs.append(current)
    return runs


def paired(runs: Sequence[Run], mode: str, base: str = "none") -> Iterator[Tuple[Tuple[int, int], float]]:
    """(run, set) and the ratio mode/base of every round that has both."""
    for r, rows in enumerate(runs):
        rounds: Dict[Tuple[int, int], Dict[str, dict]] = {}
        for row in rows:
            rounds.setdefault((row.get("set", 0), row.get("round", 0)), {})[row["mode"]] = row
        for (set_no, _), by_mode in rounds.items():
            if mode in by_mode and base in by_mode and by_mode[base]["throughput"] > 0:
                yield (r, set_no), by_mode[mode]["throughput"] / by_mode[base]["throughput"]


def pool(runs: Sequence[Run], mode: str, resamples: int = 2000, seed: int = 1) -> Optional[dict]:
    by_set: Dict[Tuple[int, int], List[float]] = {}
    for key, ratio in paired(runs, mode):
        by_set.setdefault(key, []).append(ratio)
    if not by_set:
        return None
    ratios = [x for xs in by_set.values() for x in xs]
    rng, keys, medians = random.Random(seed), list(by_set), []
    for _ in range(resamples):
        medians.append(statistics.median([x for k in (rng.choice(keys) for _ in keys) for x in by_set[k]]))
    medians.sort()
    median = statistics.median(ratios)
    return {"mode": mode, "runs": len({k[0] for k in keys}), "sets": len(keys), "windows": len(ratios),
            "median_paired_ratio": round(median, 4), "overhead_pct": round((1 - median) * 100, 2),
            "boot95": [round(medians[int(0.025 * resamples)], 4), round(medians[int(0.975 * resamples) - 1], 4)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("--last", type=int, default=0, help="only the last N runs of each file")
    ap.add_argument("--modes", default="sample@100")
    args = ap.parse_args()
    runs: List[Run] = []
    for path in args.files:
        found = runs_of(path)
        runs.extend(found[-args.last:] if args.last else found)
    for mode in filter(None, args.modes.split(",")):
        print(json.dumps(pool(runs, mode) or {"mode": mode, "windows": 0}))


if __name__ == "__main__":
    main()
