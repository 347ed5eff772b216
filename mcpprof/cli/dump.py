"""``mcpprof dump PID``: every thread's stack and every in-flight request with where it waits."""

from __future__ import annotations

from typing import Any, Dict, List

import click

from . import console


def _frame_text(frame: List[Any]) -> str:
    func, file, line = frame
    return f"{func} ({file}:{line})" if file else str(func)


def format_dump(dump: Dict[str, Any], limit: int = 30) -> str:
    """The dump as text: threads, then in-flight requests (oldest first), innermost frame first."""
    out = [f"pid {dump.get('pid')} (via {dump.get('via')})"]
    for t in dump.get("threads") or []:
        out.append(f"\nthread {t['thread']}" + ("" if t.get("active", True) else " (idle)"))
        for fr in list(reversed(t["frames"]))[:limit]:
            out.append(f"    {_frame_text(fr)}")
    requests = dump.get("requests")
    if requests is None:
        out.append("\n(in-flight requests need the mcpprof agent in the server)")
        return "\n".join(out) + "\n"
    out.append(f"\n{len(requests)} request(s) in flight")
    for r in requests:
        name = f"{r['method']} {r['target']}".strip()
        out.append(f"\n{name}  id={r['request_id']}  age {r['age_ns'] / 1e6:,.1f} ms")
        for t in r["tasks"]:
            out.append(f"  task {t['task']}: " + (t["frames"][-1][0] if t["frames"] else "?"))
            for fr in list(reversed(t["frames"]))[:limit]:
                out.append(f"      {_frame_text(fr)}")
        for t in r["threads"]:
            out.append(f"  running on thread {t['thread']}")
            for fr in list(reversed(t["frames"]))[:limit]:
                out.append(f"      {_frame_text(fr)}")
    return "\n".join(out) + "\n"


@click.command("dump")
@click.argument("pid", type=click.IntRange(1))
@click.option("--json", "as_json", is_flag=True, help="Print the dump as JSON on stdout.")
def dump_cmd(pid: int, as_json: bool) -> None:
    """Show every thread's current stack of PID and, for a server running the mcpprof agent, every
    in-flight request with its age and where it is waiting."""
    from ..launch.attach import dump_pid

    dump = dump_pid(pid)
    if as_json:
        from .output import print_json

        print_json(dump)
        return
    console.console.print(format_dump(dump), markup=False, highlight=False)
