"""``mcpprof merge``: one profile from several server processes, samples labelled with their pid."""

from __future__ import annotations

import os
from typing import Tuple

import click

from ..errors import UsageError
from . import console


@click.command("merge")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="The merged .mcpprof file.")
@click.option("--no-pid-labels", is_flag=True, help="Do not label samples with their process id.")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
def merge_cmd(files: Tuple[str, ...], output: str, no_pid_labels: bool, force: bool) -> None:
    """Merge profiles of several server processes (one stdio server per client, HTTP workers)
    into one; each sample keeps a process.pid label, request tables are merged.
    FILES may be .mcpprof files or folders holding them."""
    from ..analyse.ops import merge
    from ..model.io import load, save

    paths = []
    for f in files:
        if os.path.isdir(f):
            found = sorted(os.path.join(f, n) for n in os.listdir(f) if n.endswith(".mcpprof"))
            if not found:
                raise UsageError(f"{f} holds no .mcpprof files")
            paths += found
        else:
            paths.append(f)
    if os.path.exists(output) and not force:
        raise UsageError(f"{output} exists; choose another -o or add --force to overwrite")
    profiles = [load(p) for p in paths]
    try:
        merged = merge(profiles, label_pid=not no_pid_labels)
    except ValueError as exc:
        raise UsageError(f"cannot merge these profiles: {exc}") from None
    save(merged, output)
    pids = sorted({str(p.metadata.get("pid")) for p in profiles if p.metadata.get("pid") is not None})
    console.info(f"merged {len(profiles)} profile(s) (pids {', '.join(pids) or '-'}) into {output}")
