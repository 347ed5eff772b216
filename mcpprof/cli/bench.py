"""``mcpprof bench``: run workloads against a server and write a result file (schema mcpprof.bench/1)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from ..errors import UsageError
from . import console

COMMON = [
    click.option("--workload", "-w", "names", multiple=True, metavar="NAME",
                 help="A built-in workload (repeatable; see --list). Default: a set of one of each kind."),
    click.option("--file", "-f", "workload_file", type=click.Path(dir_okay=False), default=None,
                 help="A TOML workload file (target, steps, weights, rate, runs)."),
    click.option("--tool", default=None, help="Tool the built-in tool workloads call (default echo)."),
    click.option("--url", default=None, help="Streamable HTTP endpoint (with a COMMAND: start it, then connect)."),
    click.option("--protocol", type=click.Choice(["auto", "legacy", "modern"]), default=None,
                 help="HTTP protocol era (default auto: server/discover, else initialize)."),
    click.option("--client", type=click.Choice(["lean", "sdk"]), default=None,
                 help="Who sends the calls: mcpprof's lean client (default) or the official MCP SDK client "
                      "(conformance; it costs the machine 6-18x more CPU per call). Recorded in the result."),
    click.option("--runs", type=click.IntRange(1, 1000), default=None, help="Runs per workload."),
    click.option("--requests", type=click.IntRange(1), default=None, help="Measured calls per run."),
    click.option("--duration", type=click.FloatRange(0.01), default=None, help="Seconds per run instead of --requests."),
    click.option("--warmup", type=click.IntRange(0), default=None, help="Warm-up calls per run."),
    click.option("--seed", type=int, default=0, show_default=True, help="Seed of templates and pair order."),
    click.option("--out", "-o", "out", type=click.Path(dir_okay=False), default=None, help="Result file to write."),
    click.option("--force", is_flag=True, help="Overwrite --out if it exists."),
    click.option("--profile", "profile_dir", type=click.Path(file_okay=False), default=None,
                 help="Also record the server's CPU profile (through the launcher) into this folder."),
    click.option("--json", "as_json", is_flag=True, help="Print the result document on stdout."),
]


def common_options(fn: Any) -> Any:
    for option in reversed(COMMON):
        fn = option(fn)
    return fn


def load_workloads(names: Sequence[str], workload_file: Optional[str], tool: Optional[str], runs: Optional[int],
                   requests: Optional[int], duration: Optional[float], warmup: Optional[int],
                   extra: Dict[str, Any] | None = None) -> Tuple[Any, List[Any]]:
    """(the file's target or None, the workloads with command-line overrides applied)."""
    from ..bench import catalogue, workload as wl

    target = None
    workloads: List[Any] = []
    if workload_file:
        parsed = wl.load_file(workload_file)
        target, workloads = parsed.target, parsed.workloads
    if names or not workload_file:
        workloads += catalogue.select(list(names), tool or "echo")
    over: Dict[str, Any] = dict(extra or {})
    if runs is not None:
        over["runs"] = runs
    if requests is not None:
        over.update(requests=requests, duration=None)
    if duration is not None:
        over.update(duration=duration, requests=None)
    if warmup is not None:
        over["warmup"] = warmup
    return target, [replace(w, **over) for w in workloads]


def make_target(file_target: Any, command: Sequence[str], url: Optional[str], protocol: Optional[str],
                default_example: bool = True, client: Optional[str] = None) -> Any:
    from ..bench.workload import Target
    from ..jobs.profile import EXAMPLE_COMMAND
    from ..launch.run import resolve_command

    if command or url:
        target = Target(command=resolve_command(command) if command else None, url=url)
    elif file_target is not None:
        target = file_target
    elif default_example:
        target = Target(command=list(EXAMPLE_COMMAND))
    else:
        raise UsageError("no server: the workload file has no target table (command or url) and none was given "
                         "after -- or with --url")
    if protocol:
        target = replace(target, protocol=protocol)
    if client:
        target = replace(target, client=client)
    return target


def out_path(out: Optional[str], force: bool, stem: str = "bench") -> str:
    path = out or os.path.join("bench", "results", f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}.json")
    if os.path.exists(path) and not force:
        raise UsageError(f"{path} exists; choose another --out or add --force")
    return path


def progress_printer(quiet: bool = False) -> Any:
    """One line per finished run, on a terminal only (progress, not a record)."""
    def show(name: str, run: int, runs: int) -> None:
        if not quiet and console.console.is_terminal:
            console.info(f"  {name}: run {run + 1}/{runs}")
    return show


def _us(ns: Optional[float]) -> str:
    return "-" if ns is None else f"{ns / 1000:,.0f}"


def print_table(doc: Dict[str, Any]) -> None:
    """Per workload and step: median [min-max] over runs of p50, median p99, errors; and per
    workload the throughput and CPU per request."""
    import statistics

    from rich.table import Table

    table = Table(title="mcpprof bench (µs; median over runs \\[min-max])", title_justify="left")
    for col in ("workload", "step", "runs", "p50", "p99", "req/s", "server CPU/req", "client CPU/req", "errors"):
        table.add_column(col, justify="left" if col in ("workload", "step") else "right")
    for w in doc["workloads"]:
        runs = w["per_run"]
        med = lambda key: statistics.median([r[key] for r in runs if r.get(key) is not None] or [0])  # noqa: E731
        for i, step in enumerate(w["steps"]):
            p50s = [r["steps"][step["step_id"]]["latency_ns"]["p50"] for r in runs
                    if (r["steps"].get(step["step_id"]) or {}).get("latency_ns")]
            p99s = [r["steps"][step["step_id"]]["latency_ns"]["p99"] for r in runs
                    if (r["steps"].get(step["step_id"]) or {}).get("latency_ns")]
            errs = sum(sum((r["steps"].get(step["step_id"]) or {}).get("errors", {}).values()) for r in runs)
            p50 = f"{_us(statistics.median(p50s))} [{_us(min(p50s))}-{_us(max(p50s))}]" if p50s else "-"
            first = i == 0
            table.add_row(w["workload_id"] if first else "", step["step_id"], str(len(runs)), p50,
                          _us(statistics.median(p99s)) if p99s else "-",
                          f"{med('throughput_per_s'):,.0f}" if first else "",
                          _us(med("server_cpu_ns_per_req")) if first else "",
                          _us(med("client_cpu_ns_per_req")) if first else "", str(errs))
    console.console.print(table)


def _kib(n: Any) -> str:
    return "-" if n is None else f"{n / 1024:,.1f} KiB"


def print_memory(report: Dict[str, Any]) -> None:
    """The memory section: per-session cost, what stays after close, the verdict, the definitions."""
    from rich.markup import escape

    out = console.info
    if report.get("transport") == "stdio":
        med = report.get("per_process_median") or {}
        out(f"memory per stdio server process ({report['processes']} running): USS {_kib(med.get('uss_bytes'))}, "
            f"PSS {_kib(med.get('pss_bytes'))}, RSS {_kib(med.get('rss_bytes'))} (median); one more client costs "
            "about its USS")
        return
    cost, kept = report["per_session"], report["retained_per_closed_session_bytes"]
    counts = report["counts"]
    out(f"memory per HTTP session ({counts[0]}..{counts[-1]} sessions, idle, connections closed):")
    for key, label in (("rss_anon_bytes", "anonymous RSS"), ("traced_bytes", "traced bytes")):
        if key in cost:
            out(f"  {label:14} {_kib(cost[key]['bytes_per_session'])}/session (R² {cost[key]['r2']:.3f})")
    if "gc_objects" in cost:
        out(f"  {'gc objects':14} {cost['gc_objects']['objects_per_session']:,}/session")
    second = report.get("second_round_traced_bytes_per_session")
    out(f"  after close:   anonymous RSS {_kib(kept.get('rss_anon_bytes'))}/session retained, traced bytes "
        f"{_kib(kept.get('traced_bytes'))} (before gc {_kib(kept.get('traced_bytes_before_gc'))}), "
        f"second round {_kib(second)}")
    colour = {"leak": "bold red", "leak + allocator retention": "bold red", "allocator retention": "yellow",
              "returned": "green", "inconclusive": "yellow"}[report["verdict"]]
    out(f"  verdict: [{colour}]{report['verdict']}[/] ({escape(report['reason'])})")
    if report.get("leak_bytes_per_session") is not None:
        out(f"  split:   leak {_kib(report['leak_bytes_per_session'])}/session, one-time "
            f"{_kib(report['one_time_bytes_per_session'])}, allocator retention "
            f"{_kib(report['allocator_retention_bytes_per_session'])}/session")
    for title, rows in (("grew most per open session", report.get("top_growth_sites") or []),
                        ("kept per session in the second round", report.get("sites_kept_in_second_round") or [])):
        rows = [r for r in rows[:3] if r["bytes_per_session"] >= 64]
        if rows:
            out(f"  {title}: " + ", ".join(f"{escape(r['site'])} {r['bytes_per_session']:,} B" for r in rows))
    out("  definitions:")
    for key, text in report["definitions"].items():
        out(f"    {key}: {escape(text)}")


def parse_counts(text: Optional[str]) -> Optional[List[int]]:
    """``0,25,50`` -> [0, 25, 50]; UsageError on anything else."""
    if text is None:
        return None
    try:
        counts = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        counts = []
    if len(counts) < 2 or counts[0] < 0:
        raise UsageError(f"--memory-counts takes two or more session counts >= 0 separated by commas, got {text!r}")
    return counts


@click.command("bench", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@common_options
@click.option("--concurrency", "-c", type=click.IntRange(1, 4096), default=None, help="Calls in flight (closed loop).")
@click.option("--rate", type=float, default=None, help="Open loop: calls per second (latency from the schedule).")
@click.option("--list", "list_only", is_flag=True, help="List the built-in workloads and exit.")
@click.option("--memory", is_flag=True,
              help="Also measure memory per HTTP session (slope; what stays after close: leak or allocator "
                   "retention) or per stdio process.")
@click.option("--memory-counts", default=None, metavar="N,N,...",
              help="--memory over HTTP: the open-session counts read (default 0,25,50,100,200).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def bench_cmd(names: Tuple[str, ...], workload_file: Optional[str], tool: Optional[str], url: Optional[str],
              protocol: Optional[str], client: Optional[str], runs: Optional[int], requests: Optional[int],
              duration: Optional[float], warmup: Optional[int], seed: int, out: Optional[str], force: bool, profile_dir: Optional[str],
              as_json: bool, concurrency: Optional[int], rate: Optional[float], list_only: bool, memory: bool,
              memory_counts: Optional[str], command: Tuple[str, ...]) -> int:
    """Benchmark an MCP server: run workloads against COMMAND (after --; stdio, or HTTP with
    --url) or the bundled example server, and write a result file.

    \b
    Examples:
      mcpprof bench
      mcpprof bench -w tool-simple -w mix --runs 10 -o bench/results/now.json -- python server.py
      mcpprof bench -f workloads.toml --profile prof/
    """
    from ..bench import catalogue, results, runner

    if list_only:
        from ..bench.catalogue import get

        for name in catalogue.NAMES:
            console.info(f"{name:16} {get(name).description}")
        return 0
    counts = parse_counts(memory_counts)
    if counts is not None and not memory:
        raise UsageError("--memory-counts goes with --memory")
    if rate is not None and rate <= 0:
        raise UsageError(f"--rate must be a number > 0 calls/s, got {rate:g}")
    extra: Dict[str, Any] = {}
    if concurrency is not None:
        extra["concurrency"] = concurrency
    if rate is not None:
        extra.update(rate=rate, mode="open")
    file_target, workloads = load_workloads(names, workload_file, tool, runs, requests, duration, warmup, extra)
    target = make_target(file_target, command, url, protocol, default_example=workload_file is None, client=client)
    if memory and target.url and not target.command:
        raise UsageError("--memory over HTTP needs the server's command after -- (mcpprof starts it to read its "
                         "memory), not only --url")
    path = out_path(out, force)
    console.info(f"mcpprof bench: {len(workloads)} workload(s) against {' '.join(target.command or []) or target.url}"
                 + (" through the MCP SDK client" if target.client == "sdk" else ""))
    doc = asyncio.run(runner.bench(target, workloads, seed=seed, profile_dir=profile_dir,
                                   progress=progress_printer(as_json)))
    if memory:
        from ..bench.sessions import session_memory

        console.info("  measuring memory per session / process")
        doc["memory"] = session_memory(target, counts)
    results.write(doc, path)
    if as_json:
        from .output import print_json

        print_json(doc)
    else:
        print_table(doc)
        if memory:
            print_memory(doc["memory"])
    console.info(f"wrote {path}")
    return 0
