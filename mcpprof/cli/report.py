"""``mcpprof report``: the one-page HTML report of an output folder or a profile file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from . import console
from .output import print_json


def default_output(source: Path) -> Path:
    """``DIR/report.html`` for a folder, ``NAME.report.html`` beside a file."""
    if source.is_dir():
        return source / "report.html"
    stem = source.name[: -len(".mcpprof")] if source.name.endswith(".mcpprof") else source.stem
    return source.with_name(f"{stem}.report.html")


@click.command("report")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the page. Default: SOURCE/report.html, or NAME.report.html beside a file.")
@click.option("--baseline", type=click.Path(exists=True, path_type=Path),
              help="A profile (file or folder) to compare against: request by request, and a differential "
                   "flame graph (red where a frame's share grew, blue where it shrank).")
@click.option("--title", help="Page title. Default: 'mcpprof report'.")
@click.option("--json", "as_json", is_flag=True, help="Print {\"report\": path, \"sources\": [...]} on stdout.")
def report_cmd(source: Path, out: Optional[Path], baseline: Optional[Path], title: Optional[str],
               as_json: bool) -> None:
    """Write one self-contained HTML page for SOURCE (an mcpprof output folder or a .mcpprof file):
    the per-tool table, latency histograms, memory and request rate over time, CPU and memory flame
    graphs per tool and per thread, the slowest requests, memory figures, leak verdicts, benchmark
    figures and, with --baseline, the comparison and a differential flame graph. The page makes no
    network requests.

    \b
    Examples:
      mcpprof report mcpprof-out/20260101-120000
      mcpprof report profile.mcpprof --baseline main.mcpprof -o compare.html
    """
    from ..report import load_inputs, write_report

    inputs = load_inputs(source, baseline)
    target = out or default_output(source)
    written = write_report(inputs, target, title=title)
    if as_json:
        print_json({"report": written, "sources": inputs.sources})
    else:
        console.info(f"report: {written}")
