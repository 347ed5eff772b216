"""``mcpprof leaks``: per tool, does memory keep growing with calls? (leak / filling / no leak)."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from . import console


def _windows(text: str) -> list:
    try:
        sizes = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter("give window sizes as comma-separated integers, e.g. 5,10,20,40") from None
    if len(sizes) < 3 or any(n < 1 for n in sizes):
        raise click.BadParameter("give at least 3 window sizes, each >= 1")
    return sizes


@click.command("leaks", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder. Default: mcpprof-out/leaks-<time>.")
@click.option("--tool", "tools", multiple=True, metavar="NAME",
              help="A tool to check (repeatable). Default: the server's read-only tools.")
@click.option("--args", "args_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file mapping tool name to its arguments object.")
@click.option("--warmup", type=click.IntRange(0, 100_000), default=20, show_default=True,
              help="Calls per tool before the baseline (caches, lazy imports, pools fill here).")
@click.option("--windows", "windows", default="5,10,20,40,80", show_default=True,
              help="Calls per measuring window, growing; stops early once the verdict is clear.")
@click.option("--frames", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Traceback depth tracemalloc keeps (the stack shown for a growing site).")
@click.option("--min-rate", type=click.FloatRange(1), default=64.0, show_default=True,
              help="Bytes per call a site must keep growing by to count.")
@click.option("--fail-on-leak", is_flag=True, help="Exit with code 1 when a tool leaks (for CI).")
@click.option("--force", is_flag=True, help="Overwrite files in an existing --out folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdicts as JSON on stdout.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def leaks_cmd(out_dir: Optional[str], tools: Tuple[str, ...], args_file: Optional[str], warmup: int, windows: str,
              frames: int, min_rate: float, fail_on_leak: bool, force: bool, as_json: bool,
              command: Tuple[str, ...]) -> int:
    """Find memory leaks per tool: launch COMMAND (after --), warm each tool up, then call it in
    windows of growing size, collecting garbage and reading live memory per allocation site after
    each window. A tool leaks when a site keeps growing in proportion to the calls.

    \b
    Examples:
      mcpprof leaks -- python my_server.py
      mcpprof leaks --tool search --args args.json --fail-on-leak -- python my_server.py
    """
    from ..analyse.leaks import Rules
    from ..jobs.leaks import LeakJob, run_leak_job

    job = LeakJob(command=list(command) or None, tools=list(tools), args_file=args_file, warmup=warmup,
                  windows=_windows(windows), nframe=frames, out_dir=out_dir or "", force=force,
                  rules=Rules(min_rate=min_rate))
    from ..jobs.memlaunch import server_command

    server_command(job.command)  # a bad command fails here, before any message
    target = "the bundled example server" if job.command is None else " ".join(command)
    console.info(f"mcpprof: checking {target} for leaks ({warmup} warm-up calls per tool, windows {windows})")
    tty = console.console.is_terminal  # window-by-window progress on a terminal only
    result = run_leak_job(job, progress=(lambda tool, msg: console.info(f"  {tool}: {msg}")) if tty else None)
    if as_json:
        from .output import print_json

        print_json(result.to_dict())
    else:
        _print(result)
    console.info(f"wrote {result.out_dir}/: " + ", ".join(sorted(result.files)))
    return 1 if fail_on_leak and result.leaks else 0


def _print(result: object) -> None:
    from rich.table import Table

    colours = {"leak": "bold red", "filling": "yellow", "inconclusive": "magenta", "no leak": "green"}
    table = Table(title="memory growth per tool (after warm-up, garbage collected)", title_justify="left")
    for col in ("tool", "verdict", "calls", "B/call", "objects/call", "growing site"):
        table.add_column(col, justify="right" if col in ("calls", "B/call", "objects/call") else "left")
    for r in result.results:  # type: ignore[attr-defined]
        site = f"{r.site.where} ({r.site.function})" if r.site is not None else ""
        table.add_row(r.tool, f"[{colours.get(r.verdict, '')}]{r.verdict}[/]", str(r.calls),
                      f"{r.bytes_per_call:.0f}", f"{r.objects_per_call:.2f}", site)
    console.console.print(table)
    for r in result.results:  # type: ignore[attr-defined]
        if r.verdict != "no leak":
            console.info(f"[bold]{r.tool}[/]: {r.verdict}")
            for line in r.evidence:
                console.info(f"  - {line}")
            if r.site is not None and r.verdict == "leak":
                console.info("  stack (root first):")
                for frame in r.site.stack:
                    console.info(f"    {frame}")
