"""``mcpprof memory``: live memory per allocation site and tool, plus process memory and
fragmentation, for a launched server (``-- COMMAND``) or a running one (``PID``, memray attach)."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from . import console


@click.command("memory", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--backend", type=click.Choice(["sampled", "tracemalloc", "memray"]), default=None,
              help="sampled (default for a launched server: sampled allocations, estimates, about 1.1x "
                   "cost; falls back to tracemalloc where its C extension is not built), tracemalloc "
                   "(every allocation, ~2.5x) or memray (the memray extra; the only one for a PID).")
@click.option("--interval", default="256k", show_default=True, callback=lambda _c, _p, v: _size(v),
              help="sampled: mean bytes between samples (suffix k or m); smaller is more precise and costlier.")
@click.option("--seconds", type=click.FloatRange(0.1, 86_400), default=10.0, show_default=True,
              help="How long to drive the workload (or stay attached).")
@click.option("--warmup", "warmup_calls", type=click.IntRange(0), default=200, show_default=True,
              help="Calls before the backend starts (imports and caches settle first).")
@click.option("--frames", type=click.IntRange(1, 100), default=None,
              help="tracemalloc traceback depth (default 1; cost grows with it; deeper attributes more to "
                   "tools). Given without --backend, it selects tracemalloc.")
@click.option("--tool", "tools", multiple=True, metavar="NAME", help="A tool to call (repeatable).")
@click.option("--args", "args_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file mapping tool name to its arguments object.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=16, show_default=True, help="Calls in flight.")
@click.option("--native", is_flag=True, help="memray: record native (C) frames too.")
@click.option("--trim", is_flag=True, help="Call malloc_trim(0) in the server before the final reading.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder. Default: mcpprof-out/memory-<time>.")
@click.option("--force", is_flag=True, help="Overwrite files in an existing --out folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the tables and figures as JSON on stdout.")
@click.argument("target", nargs=-1, type=click.UNPROCESSED)
def memory_cmd(backend: Optional[str], interval: int, seconds: float, warmup_calls: int, frames: Optional[int],
               tools: Tuple[str, ...], args_file: Optional[str], concurrency: int, native: bool, trim: bool,
               out_dir: Optional[str], force: bool, as_json: bool, target: Tuple[str, ...]) -> None:
    """Memory per allocation site and MCP tool, and the process's memory and fragmentation.

    TARGET is a PID (memray attach) or, after --, a server command to launch. With nothing, the
    bundled example server.

    \b
    Examples:
      mcpprof memory -- python my_server.py
      mcpprof memory --backend sampled --interval 64k -- python my_server.py
      mcpprof memory --backend memray --seconds 20 -- python my_server.py
      mcpprof memory --backend memray 12345
    """
    from ..errors import UsageError
    from ..jobs.memory import MemoryJob, run_memory_job

    pid = None
    command = list(target)
    if len(command) == 1 and command[0].isdigit():
        pid, command = int(command[0]), []
    elif len(command) == 1 and command[0].lstrip("-").isdigit():
        raise UsageError(f"{command[0]} is not a valid pid")
    default = "memray" if pid else "tracemalloc" if frames is not None else "sampled"
    job = MemoryJob(command=command or None, pid=pid, backend=backend or default, seconds=seconds,
                    warmup_calls=warmup_calls, nframe=frames or 1, interval=interval, tools=list(tools),
                    args_file=args_file, concurrency=concurrency, native=native, trim=trim,
                    out_dir=out_dir or "", force=force)
    result = run_memory_job(job, progress=lambda msg: console.info(f"mcpprof: {msg}"))
    _show(result, as_json)
    console.info(f"wrote {result.out_dir}/: " + ", ".join(sorted(result.files)))


def _size(text: str) -> int:
    """``65536``, ``64k``, ``1m`` -> bytes (1 to 1 GiB)."""
    raw = str(text).strip().lower().removesuffix("b").removesuffix("i")
    scale = {"k": 1024, "m": 1024 ** 2}.get(raw[-1:], 1)
    try:
        value = int(float(raw[:-1] if scale > 1 else raw) * scale)
    except ValueError:
        value = 0
    if not 1 <= value <= 1024 ** 3:
        raise click.BadParameter(f"{text!r} is not a size between 1 byte and 1 GiB (e.g. 65536, 64k, 1m)",
                                 param_hint="--interval")
    return value


def _show(result: object, as_json: bool) -> None:
    from ..jobs.memory import top_sites

    profile = result.profile  # type: ignore[attr-defined]
    report = result.report  # type: ignore[attr-defined]
    allocated = getattr(result, "allocated", None)
    by_bytes, by_count = top_sites(profile, "bytes"), top_sites(profile, "count")
    allocated_rows = top_sites(allocated, "bytes") if allocated is not None else None
    if as_json:
        from .output import print_json

        doc = {"top_by_bytes": by_bytes, "top_by_count": by_count, "process_memory": report,
               "metadata": profile.metadata}
        if allocated_rows is not None:
            doc["allocated_top_by_bytes"] = allocated_rows
        print_json(doc)
        return
    from rich.table import Table

    tables = [("live memory by allocation site (bytes)", by_bytes),
              ("live memory by allocation site (objects)", by_count)]
    if allocated_rows is not None:
        seconds = profile.metadata.get("snapshot_ns", 0) - profile.metadata.get("tracing_since_ns", 0)
        tables.append((f"allocated while the workload ran ({seconds / 1e9:.1f} s, freed or not)", allocated_rows))
    for title, rows in tables:
        table = Table(title=title, title_justify="left")
        for col in ("site", "tool", "bytes", "objects"):
            table.add_column(col, justify="right" if col in ("bytes", "objects") else "left")
        for row in rows:
            table.add_row(row["site"], row["tool"] or "-", f"{row['bytes']:,}", f"{row['objects']:,}")
        console.console.print(table)
    figures = report.get("figures", {})
    definitions = report.get("definitions", {})
    table = Table(title=f"process memory (pid {report.get('pid')})", title_justify="left")
    for col in ("figure", "value", "definition"):
        table.add_column(col, justify="right" if col == "value" else "left", overflow="fold")
    for key, value in figures.items():
        shown = f"{value:.1%}" if isinstance(value, float) else f"{value / 2**20:,.2f} MiB" if key not in (
            "gc_objects", "gc_gen0") else f"{value:,}"
        table.add_row(key, shown, definitions.get(key, ""))
    console.console.print(table)
    for what, why in (report.get("unavailable") or {}).items():
        console.info(f"[dim]{what}: {why}[/]")
    fallback = profile.metadata.get("backend_fallback")
    if fallback:
        console.info(f"[yellow]backend:[/] {fallback}")
    if profile.metadata.get("collector") == "sampled":
        kib = profile.metadata.get("interval_bytes", 0) / 1024
        console.info(f"[dim]sampled: bytes and objects are estimates (one sample per {kib:g} KiB "
                     f"allocated on average, {profile.metadata.get('samples_taken', 0):,} samples)[/]")
        if not profile.samples:
            console.info(f"[yellow]no sampled allocation is still live:[/] live memory kept since the start is "
                         f"well below {kib:g} KiB per site (what was allocated is in the last table); for small "
                         f"live sizes use a smaller --interval or --backend tracemalloc")
    note = profile.metadata.get("cost_note")
    if note:
        console.info(f"[yellow]cost:[/] {note}")
