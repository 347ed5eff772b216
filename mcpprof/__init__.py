"""mcpprof: profiling and flame graphs for MCP servers written in Python.

Importing mcpprof does nothing but define names: servers import it, and stdout and start-up time
belong to them. Heavier parts load on first use.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Optional

from ._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .model import Profile

__all__ = ["__version__", "Profile", "load", "save", "export", "diff", "instrument", "uninstall", "profile_pid",
           "memory_snapshot", "fragmentation", "profile", "load_bench", "compare", "load_leaks",
           "load_ipython_extension"]


def load(path: Any) -> "Profile":
    """Load a ``.mcpprof`` profile file."""
    from .model.io import load as _load

    return _notebook_display(_load(path))


def _notebook_display(result: Any) -> Any:
    """In IPython, make mcpprof's objects show themselves (flame graph, tables); returns ``result``."""
    if "IPython" in sys.modules:
        try:
            from .notebook import register_display

            register_display()
        except Exception:
            pass
    return result


def save(profile: "Profile", path: Any) -> None:
    """Save a profile as a ``.mcpprof`` file (atomically)."""
    from .model.io import save as _save

    _save(profile, path)


def diff(base: "Profile", new: "Profile") -> "Profile":
    """The differential profile of ``new`` against ``base`` (it draws as a differential flame
    graph: ``mcpprof.export(d, "html")``, or displayed in Jupyter)."""
    from .analyse.ops import diff as _diff

    return _notebook_display(_diff(base, new))


def instrument(server: Any, exact_cpu: Optional[bool] = None) -> Any:
    """Tag every MCP request of ``server`` for profiling (reversible with :func:`uninstall`);
    ``exact_cpu=True`` also measures each request's CPU exactly, at a higher cost per request."""
    from .mcp.install import instrument as _instrument

    return _instrument(server, exact_cpu)


def uninstall(server: Any) -> None:
    """Undo :func:`instrument`."""
    from .mcp.install import uninstall as _uninstall

    _uninstall(server)


def profile_pid(pid: int, seconds: float = 10.0, mode: str = "auto", **options: Any) -> "Profile":
    """Profile the running process ``pid`` for ``seconds``: through its mcpprof agent if it runs
    one (``mode`` ``auto``/``sample``/``exact``/``pyinstrument``), else with py-spy from outside."""
    from .launch.attach import profile_pid as _profile_pid

    return _notebook_display(_profile_pid(pid, seconds, mode, **options))


def memory_snapshot(target: Any = None, *, backend: str = "", seconds: float = 10.0, nframe: int = 1,
                    **job: Any) -> "Profile":
    """Live memory per allocation stack (and MCP tool) as a profile with ``inuse_space/bytes`` and
    ``inuse_objects/count``; process memory and fragmentation in ``extras["process_memory"]``.

    ``target``: None for this process (allocation sampling or tracemalloc must be running), a pid
    (memray attach for ``seconds``), or a server command (list or string) launched, driven and
    snapshotted (options of :class:`mcpprof.jobs.memory.MemoryJob` as keywords; ``backend``
    ``sampled`` by default, falling back to ``tracemalloc`` where the extension is not built)."""
    from .jobs import memory as _memory

    if target is None:
        return _notebook_display(_memory.memory_snapshot_here(nframe))
    if isinstance(target, int):
        job = _memory.MemoryJob(pid=target, backend=backend or "memray", seconds=seconds, **job)
    else:
        import shlex

        command = shlex.split(target) if isinstance(target, str) else list(target)
        job = _memory.MemoryJob(command=command, backend=backend or "sampled", seconds=seconds,
                                nframe=nframe, **job)
    job.out_dir = job.out_dir or _memory.temp_out_dir()
    job.force = True
    return _notebook_display(_memory.run_memory_job(job).profile)


def fragmentation(pid: Any = None, trim: bool = False) -> Any:
    """Process memory and fragmentation figures, each with its definition (``.to_dict()``).

    For this process (``pid`` None): RSS/USS/PSS, traced bytes, gc counts, pymalloc arenas, glibc
    heap, and ``fragmentation`` = memory the allocators hold that no live object uses; ``trim``
    calls ``malloc_trim(0)`` first. For another pid: the ``/proc`` figures only."""
    import os

    from .memory.fragmentation import MemoryReport, measure
    from .memory.procmem import process_memory

    if pid is None or int(pid) == os.getpid():
        return measure(trim=trim)
    report = MemoryReport(figures=dict(process_memory(int(pid))), pid=int(pid))
    report.unavailable["allocators"] = ("pymalloc/glibc figures are read inside the process: use "
                                        "`mcpprof memory -- <server command>`")
    return report


def profile(rate_hz: float = 1000.0, **options: Any) -> Any:
    """Profile in-process work: ``with mcpprof.profile() as p:`` or ``@mcpprof.profile()``; the result
    is ``p.profile``. Options: ``server`` (an MCP server object to tag per tool), ``memory``
    (also trace allocations), ``nframe``, ``title``, ``exact_cpu`` (see :func:`mcpprof.inprocess.profile`)."""
    from .inprocess import profile as _profile

    return _profile(rate_hz, **options)


def load_bench(path: Any) -> Any:
    """Load an ``mcpprof bench`` result file as a :class:`mcpprof.notebook.BenchResult` (the
    document, a dict, that shows its table and, when the run profiled, its flame graph)."""
    from .bench.results import load as _load
    from .notebook.results import BenchResult

    return BenchResult(_load(path))


def compare(base: Any, new: Any, *, threshold: float = 0.05, alpha: float = 0.05, min_runs: int = 10) -> Any:
    """Gate two stored bench results (paths or loaded documents) as ``mcpprof compare BASE NEW``
    does: a :class:`mcpprof.notebook.Comparison` (``["exit_code"]`` 0 ok, 1 regression, 2
    inconclusive) that shows its verdicts, and the differential flame graph when both sides profiled."""
    from .bench import results
    from .bench.gate import Rule, compare_stored
    from .notebook.results import Comparison

    docs = [d if isinstance(d, dict) else results.load(d) for d in (base, new)]
    rule = Rule(mode="stored", threshold=threshold, alpha=alpha, min_runs=min_runs)
    ref = "" if isinstance(base, dict) else str(base)
    profiles = {"baseline": (docs[0].get("profiles") or {}).get("candidate") or [],
                "candidate": (docs[1].get("profiles") or {}).get("candidate") or []}
    return Comparison(compare_stored(docs[0], docs[1], rule, baseline_ref=ref), profiles=profiles)


def load_leaks(path: Any) -> Any:
    """Load an ``mcpprof leaks`` result (its output folder or ``leaks.json``) as a
    :class:`mcpprof.notebook.LeakReport`: the verdict per tool and the growing sites' flame graph."""
    import json
    import os

    from .errors import UsageError
    from .notebook.results import LeakReport

    file = os.path.join(path, "leaks.json") if os.path.isdir(path) else str(path)
    try:
        with open(file, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as err:
        raise UsageError(f"{file}: not a leak report ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("tools"), list):
        raise UsageError(f"{file}: not a leak report (no 'tools' list)")
    return LeakReport(data, os.path.dirname(os.path.abspath(file)))


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext mcpprof``: the magics ``%%mcpprof``, ``%%mcpprof_memory``, ``%mcpprof_attach``
    and the rich display of profiles (needs IPython: ``pip install 'mcpprof[notebook]'``)."""
    from .notebook import load_ipython_extension as _load_ext

    _load_ext(shell)


def __getattr__(name: str) -> Any:
    if name == "export":  # the package mcpprof.export is callable: mcpprof.export(profile, "html")
        import importlib

        return importlib.import_module(".export", __name__)
    if name == "Profile":
        from .model import Profile

        return Profile
    raise AttributeError(f"module 'mcpprof' has no attribute {name!r}")
