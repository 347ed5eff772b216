"""``mcpprof diff A B``: where the time went between two profiles (e.g. the baseline's and the
candidate's from ``mcpprof compare --duet --profile DIR``).

Writes folded stacks with two counts per line (``stack count_A count_B``, the format of
flamegraph.pl's ``difffolded.pl``, which ``flamegraph.pl`` draws as a differential flame graph)
and prints the functions whose self time changed most. Each side is a ``.mcpprof`` file or a
folder of them (merged). Per-tool frames (``tools/call NAME``) head every stack.
"""

from __future__ import annotations

import glob
import os
from typing import Dict, List, Optional, Tuple

import click

from ..errors import UsageError
from . import console


def load_side(path: str):  # -> Profile
    from ..analyse.ops import merge
    from ..model.io import load

    paths = sorted(glob.glob(os.path.join(path, "*.mcpprof"))) if os.path.isdir(path) else [path]
    if not paths:
        raise UsageError(f"{path} holds no .mcpprof files")
    profiles = [load(p) for p in paths]
    return profiles[0] if len(profiles) == 1 else merge(profiles)


def _folded_counts(profile, value_type: Optional[str]) -> Dict[str, int]:
    from ..export.folded import render

    out: Dict[str, int] = {}
    for line in render(profile, value_type, request_frames=True).decode("utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            out[stack] = out.get(stack, 0) + int(count)
    return out


def two_count_folded(base, new, value_type: Optional[str] = None, normalize: bool = False) -> bytes:
    """``stack count_base count_new`` lines, sorted; ``normalize`` scales B's total to A's."""
    a, b = _folded_counts(base, value_type), _folded_counts(new, value_type)
    factor = 1.0
    if normalize and sum(b.values()):
        factor = sum(a.values()) / sum(b.values())
    lines = [f"{s} {a.get(s, 0)} {int(round(b.get(s, 0) * factor))}\n" for s in sorted(set(a) | set(b))]
    return "".join(lines).encode()


def top_changes(base, new, n: int = 15) -> List[Tuple[str, int, int]]:
    """(function, self in A, self in B) with the largest change, per total-normalised share."""
    from ..analyse.ops import function_stats

    sa = {f"{s.function} ({os.path.basename(s.file)}:{s.line})": s.self_value for s in function_stats(base)}
    sb = {f"{s.function} ({os.path.basename(s.file)}:{s.line})": s.self_value for s in function_stats(new)}
    ta, tb = sum(sa.values()) or 1, sum(sb.values()) or 1
    keys = sorted(set(sa) | set(sb), key=lambda k: -abs(sb.get(k, 0) / tb - sa.get(k, 0) / ta))
    return [(k, sa.get(k, 0), sb.get(k, 0)) for k in keys[:n]]


@click.command("diff")
@click.argument("a", type=click.Path(exists=True))
@click.argument("b", type=click.Path(exists=True))
@click.option("--out", "-o", default="diff.folded", show_default=True,
              help="Two-count folded file (flamegraph.pl draws it as a differential flame graph).")
@click.option("--type", "value_type", default=None, help="Value column (default: the profile's CPU time).")
@click.option("--normalize", is_flag=True, help="Scale B's counts so both sides have the same total.")
@click.option("--top", type=click.IntRange(0), default=15, show_default=True, help="Functions to list.")
def diff_cmd(a: str, b: str, out: str, value_type: Optional[str], normalize: bool, top: int) -> int:
    """Where the time went from profile A to profile B (files or folders of .mcpprof files)."""
    from rich.table import Table

    base, new = load_side(a), load_side(b)
    data = two_count_folded(base, new, value_type, normalize)
    with open(out, "wb") as f:
        f.write(data)
    if top:
        ta = sum(v for _, v, _ in top_changes(base, new, 10**9)) or 1
        tb = sum(v for _, _, v in top_changes(base, new, 10**9)) or 1
        table = Table(title="self time share, A -> B (largest changes first)", title_justify="left")
        for col in ("function", "A", "B", "change"):
            table.add_column(col, justify="left" if col == "function" else "right")
        for name, va, vb in top_changes(base, new, top):
            table.add_row(name, f"{va / ta:.1%}", f"{vb / tb:.1%}", f"{(vb / tb - va / ta) * 100:+.1f} pt")
        console.console.print(table)
    console.info(f"wrote {out} (stack count_A count_B; draw with: flamegraph.pl {out} > diff.svg)")
    return 0
