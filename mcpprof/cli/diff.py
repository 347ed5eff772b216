"""``mcpprof diff A B``: where the time went between two profiles (e.g. the baseline's and the
candidate's from ``mcpprof compare --duet --profile DIR``).

Writes, by the output's suffix, a differential flame graph page (``.html``/``.htm``: red where a
frame's share grew, blue where it shrank) or folded stacks with two counts per line (``stack
count_A count_B``, the format of flamegraph.pl's ``difffolded.pl``, which ``flamegraph.pl`` draws
as a differential flame graph), and prints the functions whose self time changed most. Each side
is a ``.mcpprof`` file or a folder of them (merged). Per-tool frames (``tools/call NAME``) head
every stack.
"""

from __future__ import annotations

import glob
import os
from typing import List, Optional, Tuple

import click

from ..errors import UsageError
from . import console

HTML_SUFFIXES = (".html", ".htm")


def load_side(path: str):  # -> Profile
    from ..analyse.ops import merge
    from ..model.io import load

    paths = sorted(glob.glob(os.path.join(path, "*.mcpprof"))) if os.path.isdir(path) else [path]
    if not paths:
        raise UsageError(f"{path} holds no .mcpprof files")
    profiles = [load(p) for p in paths]
    return profiles[0] if len(profiles) == 1 else merge(profiles)


def top_changes(base, new, n: int = 15, value_type: Optional[str] = None
                ) -> Tuple[List[Tuple[str, int, int]], int, int]:
    """(function, self in A, self in B) with the largest change in share of the total, first; and
    both totals."""
    from ..analyse.ops import function_stats

    sa = {f"{s.function} ({os.path.basename(s.file)}:{s.line})": s.self_value for s in function_stats(base, value_type)}
    sb = {f"{s.function} ({os.path.basename(s.file)}:{s.line})": s.self_value for s in function_stats(new, value_type)}
    ta, tb = sum(sa.values()) or 1, sum(sb.values()) or 1
    keys = sorted(set(sa) | set(sb), key=lambda k: -abs(sb.get(k, 0) / tb - sa.get(k, 0) / ta))
    return [(k, sa.get(k, 0), sb.get(k, 0)) for k in keys[:n]], ta, tb


@click.command("diff")
@click.argument("a", type=click.Path(exists=True))
@click.argument("b", type=click.Path(exists=True))
@click.option("--out", "-o", default="diff.folded", show_default=True,
              help="Output file. .html: a differential flame graph page (widths from B, red where a frame's "
                   "share grew, blue where it shrank); otherwise two-count folded stacks (flamegraph.pl draws "
                   "them as a differential flame graph).")
@click.option("--type", "value_type", default=None, help="Value column (default: the profile's CPU time).")
@click.option("--normalize/--no-normalize", default=None,
              help="Compare by share: folded output scales A's counts to B's total (difffolded.pl -n; off by "
                   "default); the page compares shares unless --no-normalize (then raw values).")
@click.option("--title", default=None, help="Page title (.html output).")
@click.option("--full-paths", is_flag=True, help="Keep absolute file paths (shortened by default).")
@click.option("--force", is_flag=True, help="Overwrite an existing output file.")
@click.option("--top", type=click.IntRange(0), default=15, show_default=True, help="Functions to list.")
@click.option("--json", "as_json", is_flag=True,
              help="Print the largest changes as JSON on stdout (self value and share in A and B) instead of a table.")
def diff_cmd(a: str, b: str, out: str, value_type: Optional[str], normalize: Optional[bool],
             title: Optional[str], full_paths: bool, force: bool, top: int, as_json: bool) -> int:
    """Where the time went from profile A to profile B (files or folders of .mcpprof files).

    \b
    Examples:
      mcpprof diff base.mcpprof new.mcpprof -o diff.html      # differential flame graph page
      mcpprof diff prof/baseline prof/candidate -o d.folded   # flamegraph.pl d.folded > d.svg
    """
    from rich.markup import escape
    from rich.table import Table

    from ..export import diff as D

    if os.path.exists(out) and not force:
        raise UsageError(f"{out} exists; choose another -o or add --force to overwrite")
    base, new = load_side(a), load_side(b)
    as_html = out.lower().endswith(HTML_SUFFIXES)
    if as_html:
        data = D.html_pair(base, new, value_type, title=title, full_paths=full_paths,
                           normalize=normalize is not False)
    else:
        data = D.folded_pair(base, new, value_type, normalize=bool(normalize), full_paths=full_paths)
    with open(out, "wb") as f:
        f.write(data)
    if as_json:
        from .output import print_json

        rows, ta, tb = top_changes(base, new, top, value_type)
        print_json({"output": out, "total_a": ta, "total_b": tb, "changes": [
            {"function": name, "a": va, "b": vb, "share_a": va / ta, "share_b": vb / tb} for name, va, vb in rows]})
    elif top:
        rows, ta, tb = top_changes(base, new, top, value_type)
        table = Table(title="self time share, A -> B (largest changes first)", title_justify="left")
        for col in ("function", "A", "B", "change"):
            table.add_column(col, justify="left" if col == "function" else "right")
        for name, va, vb in rows:
            table.add_row(escape(name), f"{va / ta:.1%}", f"{vb / tb:.1%}", f"{(vb / tb - va / ta) * 100:+.1f} pt")
        console.console.print(table)
    if as_html:
        console.info(f"wrote {escape(out)} (differential flame graph: red grew, blue shrank; open it in a browser)")
    else:
        console.info(escape(f"wrote {out} (stack count_A count_B; draw with: flamegraph.pl {out} > diff.svg)"))
    return 0
