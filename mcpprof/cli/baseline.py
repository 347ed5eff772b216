"""``mcpprof baseline save``: keep a result file as ``<dir>/<branch>_<date>.json`` and point
``<dir>/<branch>_latest.json`` at it (a small JSON pointer, so it works on every file system)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Optional

import click

from ..errors import UsageError
from . import console
from ..atomic import write_atomic

POINTER_SCHEMA = "mcpprof.baseline-pointer/1"


def resolve_pointer(path: str) -> str:
    """The result file a ``*_latest.json`` pointer names (any other path unchanged)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8")) if p.is_file() and p.stat().st_size < 4096 else None
    except (OSError, ValueError):
        return path
    if isinstance(data, dict) and data.get("schema") == POINTER_SCHEMA:
        target = p.parent / str(data.get("path", ""))
        if not target.is_file():
            raise UsageError(f"{path} points at {target}, which does not exist")
        return str(target)
    return path


def _branch() -> str:
    from ..bench.results import git_revision

    rev = git_revision() or {}
    return rev.get("branch") or "local"


@click.group("baseline")
def baseline_cmd() -> None:
    """Stored baselines for `mcpprof compare` (bench/baseline/<branch>_<date>.json)."""


@baseline_cmd.command("save")
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("--dir", "directory", default=os.path.join("bench", "baseline"), show_default=True,
              help="Folder holding the baselines.")
@click.option("--branch", default=None, help="Branch name in the file name (default: the current git branch).")
@click.option("--date", "date", default=None, help="Date in the file name, YYYY-MM-DD (default: today, UTC).")
@click.option("--force", is_flag=True, help="Overwrite an existing baseline of that branch and date.")
def save_cmd(result: str, directory: str, branch: Optional[str], date: Optional[str], force: bool) -> int:
    """Save RESULT (a `mcpprof bench` result file) as the branch's baseline of the day."""
    from ..bench import results

    doc = results.load(result)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", branch or _branch()).strip("-") or "local"
    day = date or _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
        raise UsageError(f"--date must be YYYY-MM-DD, got {day!r}")
    folder = Path(directory)
    target = folder / f"{name}_{day}.json"
    if target.exists() and not force:
        raise UsageError(f"{target} exists; add --force to overwrite it")
    doc.setdefault("baseline_info", {}).update({"branch": name, "date": day, "source": str(result)})
    results.write(doc, target)
    pointer = folder / f"{name}_latest.json"
    write_atomic(pointer, json.dumps({"schema": POINTER_SCHEMA, "path": target.name}) + "\n")
    console.info(f"saved {target} (and {pointer} -> {target.name})")
    return 0
