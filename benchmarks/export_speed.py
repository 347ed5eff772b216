"""Exporter speed and output size on a big synthetic profile.

Builds, deterministically (seeded), a profile of ``--samples`` samples (default 1,000,000) over
``--stacks`` distinct stacks (default 100,000), aggregated as the model stores them (one Sample row
per distinct stack and label set, counts summing to the sample total), with samples / CPU / wall
columns, 12 tools plus the transport bucket, 4 threads, stacks 12 to ~45 frames deep drawn from
~3,000 functions in ~150 files under sys.path (so paths get shortened).

Times each exporter with its default options (``--runs`` interleaved rounds, 3 by default, each
running every exporter once; medians) and prints
one JSON object per line on stdout: the profile, then one line per exporter with ``seconds`` (wall
clock, median), ``cpu_seconds`` (this process's CPU time, median: steadier on a shared machine) and
``bytes``, then a summary with the total against the target (all three under 3 s, HTML under 5 MB).

    python benchmarks/export_speed.py [--stacks 100000] [--samples 1000000] [--runs 3] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcpprof.export.registry import EXPORTERS, get_exporter  # noqa: E402
from mcpprof.model import CPU, SAMPLES, WALL, Frame, Profile, ProfileBuilder  # noqa: E402
from mcpprof.model import labels as L  # noqa: E402

STDLIB = "/usr/lib/python3.11"
SITE = "/srv/app/.venv/lib/python3.11/site-packages"
APP = "/srv/app/src"


def build_profile(n_stacks: int, n_samples: int, seed: int) -> Profile:
    rng = random.Random(seed)
    dirs = [STDLIB + "/asyncio", STDLIB + "/json", SITE + "/mcp/server", SITE + "/pydantic", SITE + "/anyio",
            SITE + "/httpx", APP + "/weather", APP + "/maps"]
    files = [f"{rng.choice(dirs)}/mod{i}.py" for i in range(150)]
    funcs = [Frame(f"Class{i % 97}.method_{i}", files[i % len(files)], 10 + (i * 7) % 900) for i in range(3000)]
    loop = [Frame(f"loop_{i}", f"{STDLIB}/asyncio/base_events.py", 100 + i) for i in range(10)]
    worker = [Frame(f"worker_{i}", f"{STDLIB}/threading.py", 900 + i) for i in range(4)]
    tools = [f"tool_{i:02d}" for i in range(12)]
    threads = ["MainThread", "AnyIO worker thread 1", "AnyIO worker thread 2", "AnyIO worker thread 3"]
    # Each tool calls into its own part of the function pool, so stacks share prefixes as real ones do.
    entry = {t: [Frame(f"{t}.handler", f"{APP}/weather/tools.py", 20 + k * 10)] for k, t in enumerate(tools)}

    seen = set()
    rows = []
    while len(rows) < n_stacks:
        tool = rng.choice(tools + [None])
        thread = rng.choice(threads) if tool else "MainThread"
        base = (worker if thread != "MainThread" else loop)
        stack = list(base) + (entry[tool] if tool else [])
        width = 6 + rng.randrange(40)
        lo = tools.index(tool) * 240 if tool else 2900
        depth = rng.randint(2, 30)
        node = lo
        for _ in range(depth):
            node = (node * 31 + rng.randrange(width)) % 3000
            stack.append(funcs[node])
        labels = {L.THREAD_NAME: thread}
        if tool:
            labels.update({L.METHOD: "tools/call", L.TOOL: tool})
        key = (tuple(stack), tool, thread)
        if key in seen:
            continue
        seen.add(key)
        rows.append((stack, labels))

    # every stack gets one sample, the rest follow a heavy-tailed distribution
    weights = [1.0 / (1 + i) ** 0.9 for i in range(n_stacks)]
    rng.shuffle(weights)
    counts = [1] * n_stacks
    for i in rng.choices(range(n_stacks), weights=weights, k=n_samples - n_stacks):
        counts[i] += 1

    builder = ProfileBuilder([SAMPLES, CPU, WALL], metadata={
        "collector": "sampler", "sys_path": [STDLIB, SITE, APP], "stdlib_dirs": [STDLIB], "site_dirs": [SITE]})
    for (stack, labels), n in zip(rows, counts):
        cpu = n * 1_000_000 * rng.randint(20, 100) // 100
        builder.add(stack, [n, cpu, n * 1_000_000], labels)
    return builder.build()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stacks", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--exporters", default="folded,speedscope,html",
                    help="comma-separated registry names, or 'all' (the target covers the default three)")
    a = ap.parse_args()
    if a.samples < a.stacks:
        ap.error("--samples must be at least --stacks")

    t0 = time.perf_counter()
    profile = build_profile(a.stacks, a.samples, a.seed)
    print(json.dumps({"profile": {"samples": profile.total("samples"), "sample_rows": len(profile.samples),
                                  "stacks": len(profile.stacks), "frames": len(profile.frames),
                                  "build_seconds": round(time.perf_counter() - t0, 2)}}), flush=True)

    chosen = {name: get_exporter(name) for name in
              (EXPORTERS if a.exporters == "all" else a.exporters.split(","))}
    # interleaved rounds: each round runs every exporter once, so drifts hit them alike
    times = {name: [] for name in chosen}
    cpu = {name: [] for name in chosen}
    sizes = {}
    for _ in range(a.runs):
        for name, exporter in chosen.items():
            t, c = time.perf_counter(), time.process_time()
            out = exporter.render(profile)
            times[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
            sizes[name] = len(out)
            del out
    for name in chosen:
        print(json.dumps({"exporter": name, "seconds": round(statistics.median(times[name]), 3), "runs": [round(x, 3) for x in times[name]],
                          "cpu_seconds": round(statistics.median(cpu[name]), 3), "bytes": sizes[name]}),
              flush=True)
    target = {"folded", "speedscope", "html"}
    if target <= set(chosen):
        in_target = sum(statistics.median(times[n]) for n in target)
        ok = in_target < 3.0 and sizes["html"] < 5_000_000
        print(json.dumps({"summary": {"total_seconds": round(in_target, 3), "html_bytes": sizes["html"],
                                      "target": "folded + speedscope + html < 3 s, html < 5 MB", "met": ok}}),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
