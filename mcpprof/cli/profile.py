"""``mcpprof profile``: the main job (launch, drive, profile, write a folder, print the table)."""

from __future__ import annotations

from typing import Optional, Tuple

import click

from ..jobs.profile import ProfileJob, run_profile_job
from . import console
from .progress import drive_progress


@click.command("profile", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder. Default: mcpprof-out/<time>. An existing non-empty one needs --force.")
@click.option("--seconds", type=click.FloatRange(0.1, 86_400), default=10.0, show_default=True,
              help="How long to drive the workload.")
@click.option("--tool", "tools", multiple=True, metavar="NAME",
              help="A tool to call (repeatable). Default: the example's tools, or the server's read-only tools.")
@click.option("--args", "args_file", type=click.Path(dir_okay=False), default=None,
              help="JSON file mapping tool name to its arguments object.")
@click.option("--rate", type=click.FloatRange(1, 10_000), default=100.0, show_default=True, help="Sampling rate in Hz.")
@click.option("--concurrency", type=click.IntRange(1, 1024), default=16, show_default=True, help="Calls in flight.")
@click.option("--max-calls", type=click.IntRange(1), default=None, help="Stop after this many calls.")
@click.option("--force", is_flag=True, help="Overwrite files in an existing --out folder.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-tool summary as JSON on stdout.")
@click.option("--mode", type=click.Choice(["sample", "exact", "pyinstrument", "pyspy"]), default="sample",
              show_default=True, help="CPU collector: sample (in the server, low overhead), exact (yappi, every "
                                      "call), pyinstrument (event-loop thread only), pyspy (from outside).")
@click.option("--exact-cpu", is_flag=True,
              help="Measure each request's CPU exactly in the server (higher overhead) instead of from samples.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def profile_cmd(out_dir: Optional[str], seconds: float, tools: Tuple[str, ...], args_file: Optional[str],
                rate: float, concurrency: int, max_calls: Optional[int], force: bool, as_json: bool,
                mode: str, exact_cpu: bool, command: Tuple[str, ...]) -> None:
    """Profile an MCP server per tool: launch COMMAND (after --) under the profiler, drive its
    tools over stdio, and write report files. With no COMMAND, profiles the bundled example server.

    \b
    Examples:
      mcpprof profile
      mcpprof profile --seconds 30 --tool search -- python my_server.py
    """
    job = ProfileJob(command=list(command) or None, out_dir=out_dir or "", seconds=seconds, tools=list(tools),
                     args_file=args_file, rate_hz=rate, concurrency=concurrency, max_calls=max_calls, force=force,
                     mode=mode, exact_cpu=exact_cpu)
    target = "the bundled example server" if job.is_example else " ".join(command)

    with drive_progress(seconds) as progress:
        def started(pid: int, calls: list) -> None:
            console.info(f"mcpprof: profiling {target} (pid {pid}) for {seconds:g} s: {len(calls)} kinds of call, "
                         f"{concurrency} in flight, {mode} mode at {rate:g} Hz")
            if progress is not None:
                progress.watch(pid)  # the status line also counts the server's samples

        result = run_profile_job(job, progress=progress, started=started)
    from ..analyse.summary import format_table, summarize
    from .output import print_json

    summary = summarize(result.profile)
    if as_json:
        print_json(summary.to_dict())
    else:
        console.console.print(format_table(summary))
    if result.invalid_stdout_lines:
        console.info(f"[yellow]warning:[/] the server wrote {result.invalid_stdout_lines} non-JSON-RPC line(s) to stdout")
    console.info(f"wrote {result.out_dir}/: " + ", ".join(sorted(result.files)))
