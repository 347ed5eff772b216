"""memray collector: a ``memray.Tracker`` inside a launched server (through the agent's memory
control channel) or ``memray attach`` to a running one, and memray captures converted to the model.

memray is the ``memray`` extra, imported only here and only when used. Attaching needs, and
:func:`preflight` checks before anything touches the target: gdb (memray's injector on 3.11),
ptrace rights over the target (same user or CAP_SYS_PTRACE, Yama ``ptrace_scope``, no other
tracer), and memray importable *in the target's environment* (a target without it can crash).
Attaching stalls the server for up to ~0.8 s while gdb is in it and sees only later allocations
(research/memory-profilers.md section 1.1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

from ..errors import CollectorUnavailable, TargetError, UsageError
from ..model.profile import INUSE_OBJECTS, INUSE_SPACE, Frame, Profile, ProfileBuilder

CAP_SYS_PTRACE = 19
KINDS = ("leaked", "peak")


def check() -> Optional[str]:
    """None when memray is importable here, else the reason (for the collector registry)."""
    import importlib.util

    return None if importlib.util.find_spec("memray") is not None else "memray is not installed"


def _memray() -> Any:
    try:
        import memray
    except ImportError:
        raise CollectorUnavailable("memray", "memray") from None
    return memray


# -- preflight -------------------------------------------------------------------------------------


def _status(pid: int) -> Dict[str, str]:
    out: Dict[str, str] = {}
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def ptrace_problem(pid: int) -> Optional[str]:
    """Why this process may not ptrace ``pid`` (a one-line fix), or None."""
    try:
        target = _status(pid)
        mine = _status(os.getpid())
    except FileNotFoundError:
        return f"no process with pid {pid} (it exited, or the pid is wrong)"
    except OSError as exc:
        return f"cannot read /proc/{pid}/status ({exc.strerror})"
    has_cap = bool(int(mine.get("CapEff", "0"), 16) >> CAP_SYS_PTRACE & 1)
    target_uid = int(target.get("Uid", "0").split()[1])  # effective uid
    tracer = target.get("TracerPid", "0")
    if tracer != "0":
        return f"pid {pid} is already being traced by pid {tracer} (a debugger or profiler); detach it first"
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as fh:
            scope = int(fh.read().strip() or 0)
    except (OSError, ValueError):
        scope = 0
    if scope >= 3:
        return "ptrace is disabled on this machine (kernel.yama.ptrace_scope=3); attaching is impossible until reboot"
    if target_uid != os.geteuid() and not has_cap:
        return (f"no ptrace rights over pid {pid}: it runs as uid {target_uid}, this is uid {os.geteuid()}; "
                "run mcpprof as that user or with sudo (CAP_SYS_PTRACE; containers need --cap-add SYS_PTRACE)")
    if scope in (1, 2) and not has_cap:
        return (f"no ptrace rights over pid {pid}: kernel.yama.ptrace_scope={scope} allows tracing only child "
                "processes; use sudo, or `sudo sysctl kernel.yama.ptrace_scope=0`")
    return None


def _target_python(pid: int) -> List[str]:
    """Interpreters that may be the target's: argv[0] when it names a python, then /proc/PID/exe."""
    out: List[str] = []
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv0 = fh.read().split(b"\0")[0].decode(errors="replace")
        if "python" in os.path.basename(argv0):
            if os.path.isabs(argv0):
                out.append(argv0)
            elif os.sep in argv0:
                out.append(os.path.join(os.readlink(f"/proc/{pid}/cwd"), argv0))
            elif shutil.which(argv0):
                out.append(str(shutil.which(argv0)))
    except OSError:
        pass
    try:
        out.append(os.readlink(f"/proc/{pid}/exe"))
    except OSError:
        pass
    return out


def target_memray_problem(pid: int) -> Optional[str]:
    """None when the target's interpreter and environment can import memray (same version as
    here), else what is missing. Runs the target's interpreter with its PYTHONPATH/PYTHONHOME."""
    ours = getattr(_memray(), "__version__", "?")
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            environ = dict(kv.split(b"=", 1) for kv in fh.read().split(b"\0") if b"=" in kv)
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError as exc:
        return f"cannot read the environment of pid {pid} ({exc.strerror})"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON") and k != "VIRTUAL_ENV"}
    for key in (b"PYTHONPATH", b"PYTHONHOME", b"VIRTUAL_ENV", b"PYTHONNOUSERSITE", b"PYTHONUSERBASE", b"HOME"):
        if key in environ:
            env[key.decode()] = environ[key].decode(errors="replace")
    code = "import sys, memray; sys.stdout.write(memray.__version__)"
    tried = []
    for exe in _target_python(pid):
        if not os.path.exists(exe):
            continue
        tried.append(exe)
        try:
            proc = subprocess.run([exe, "-c", code], env=env, cwd=cwd, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if proc.returncode == 0:
            theirs = proc.stdout.decode(errors="replace").strip()
            if theirs != ours:
                return (f"memray {theirs} in the target's environment differs from memray {ours} here; "
                        "install the same version in both")
            return None
    where = tried[0] if tried else f"pid {pid}'s interpreter"
    return (f"memray is not installed in the target's environment ({where}); install it there "
            "(pip install memray) or attaching could crash the server")


def preflight(pid: int) -> List[str]:
    """Everything that stands in the way of ``memray attach PID``, as one-line messages."""
    _memray()
    if not os.path.exists(f"/proc/{pid}"):
        return [f"no process with pid {pid} (it exited, or the pid is wrong)"]
    problems = []
    if shutil.which("gdb") is None:
        problems.append("gdb is not installed (memray attaches through it): apt-get install gdb")
    ptrace = ptrace_problem(pid)
    if ptrace:
        problems.append(ptrace)
    else:
        missing = target_memray_problem(pid)
        if missing:
            problems.append(missing)
    return problems


# -- attach ------------------------------------------------------------------------------------------


def attach(pid: int, seconds: float, path: str, native: bool = False, python_allocators: bool = False) -> str:
    """Track ``pid`` for ``seconds`` with ``memray attach`` (gdb), then detach; returns the capture path.
    Raises TargetError with every preflight problem first."""
    problems = preflight(pid)
    if problems:
        raise TargetError("; ".join(problems))
    cmd = [sys.executable, "-m", "memray", "attach", "--method", "gdb", "-f", "-o", path]
    cmd += ["--native"] * native + ["--trace-python-allocators"] * python_allocators + [str(pid)]
    _run(cmd, "attach")
    time.sleep(max(0.0, seconds))
    _run([sys.executable, "-m", "memray", "detach", "--method", "gdb", str(pid)], "detach")
    deadline = time.monotonic() + 10
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return path


def _run(cmd: List[str], what: str) -> None:
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise TargetError(f"memray {what} did not finish within 120 s") from None
    if proc.returncode != 0:
        text = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
        raise TargetError(f"memray {what} failed: {text[-1] if text else f'exit code {proc.returncode}'}")


# -- captures -> model -----------------------------------------------------------------------------


def read_capture(path: str, kind: str = "leaked", max_frames: int = 64) -> Profile:
    """A memray capture as a profile: ``inuse_space``/``inuse_objects`` per stack, of the
    allocations still alive when tracking ended (``leaked``) or at the peak (``peak``)."""
    if kind not in KINDS:
        raise UsageError(f"unknown capture view {kind!r}: choose one of {', '.join(KINDS)}")
    memray = _memray()
    if not os.path.isfile(path):
        raise UsageError(f"{path}: no such capture file")
    try:
        reader = memray.FileReader(path)
        records = (reader.get_leaked_allocation_records(merge_threads=True) if kind == "leaked"
                   else reader.get_high_watermark_allocation_records(merge_threads=True))
        meta = reader.metadata
        builder = ProfileBuilder([INUSE_SPACE, INUSE_OBJECTS], {
            "collector": "memray", "view": kind, "capture": os.path.abspath(path), "pid": meta.pid,
            "command": meta.command_line, "peak_memory": meta.peak_memory,
            "total_allocations": meta.total_allocations, "python_allocator": str(meta.python_allocator),
            "native_traces": bool(meta.has_native_traces),
            "start_ns": int(meta.start_time.timestamp() * 1e9), "end_ns": int(meta.end_time.timestamp() * 1e9)})
        for record in records:
            stack = [Frame(str(fn), str(file), int(line or 0), _module(str(file)))
                     for fn, file, line in reversed(record.stack_trace(max_frames))]
            builder.add(stack or [Frame("<no python frames>")], (record.size, record.n_allocations))
    except (OSError, IOError, ValueError, RuntimeError) as exc:
        raise UsageError(f"{path}: not a readable memray capture ({type(exc).__name__}: {exc})") from None
    return builder.build()


def _module(file: str) -> str:
    base = os.path.basename(file)
    return base[:-3] if base.endswith(".py") else base


class MemrayCollector:
    """A Tracker in this process writing ``path`` (used inside a server by the memory channel)."""

    name = "memray"

    def __init__(self, path: str, native: bool = False, python_allocators: bool = False, **_: Any):
        self.path, self.native, self.python_allocators = path, native, python_allocators
        self._tracker: Any = None

    def start(self) -> None:
        memray = _memray()
        self._tracker = memray.Tracker(self.path, native_traces=self.native,
                                       trace_python_allocators=self.python_allocators)
        self._tracker.__enter__()

    def stop(self) -> None:
        if self._tracker is not None:
            self._tracker.__exit__(None, None, None)
            self._tracker = None

    def snapshot(self, kind: str = "leaked") -> Profile:
        self.stop()
        return read_capture(self.path, kind)
