"""The ``pyspy`` collector: sample a running Python process from outside with py-spy.

Runs ``py-spy record --pid PID --format raw --threads --full-filenames`` and converts its folded
output into the model: ``samples/count`` and ``cpu/nanoseconds`` (samples x period; py-spy drops
idle threads, so its samples approximate on-CPU time), one ``thread.name`` label per thread, and
``gen_ai.tool.name`` where a tool function is found below a framework's dispatch frame
(:mod:`mcpprof.collect.toolframes`). Samples whose leaf is a waiting call that py-spy's racy idle
check let through are dropped (counted in ``metadata["idle_samples_dropped"]``); stacks that do
not start at a thread's entry point (read half-way) get an ``[unrooted]`` root frame.

Needs the ``py-spy`` executable (``pip install 'mcpprof[pyspy]'``) and ptrace rights over the
target; :func:`check_attach` turns the usual permission problems into one-line errors.
Runs outside the server; stdlib only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Tuple

from ..errors import CollectorUnavailable, TargetError
from ..model import labels as L
from ..model.profile import CPU, SAMPLES, Frame, Profile, ProfileBuilder
from .toolframes import UNROOTED_FUNCTION, FrameAttributor, is_idle_leaf, is_rooted

CAP_SYS_PTRACE = 19


def find_pyspy() -> str:
    """Path of the py-spy executable (next to this Python first, then PATH)."""
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.access(here, os.X_OK):
        return here
    found = shutil.which("py-spy")
    if found:
        return found
    raise CollectorUnavailable("pyspy", "pyspy", "the py-spy executable was not found")


def pyspy_check() -> Optional[str]:
    try:
        find_pyspy()
    except CollectorUnavailable as exc:
        return str(exc)
    return None


# -- permissions ----------------------------------------------------------------------------------

def _has_ptrace_cap() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_SYS_PTRACE & 1)
    except OSError:
        pass
    return os.geteuid() == 0


def _yama_scope() -> int:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


def _is_ancestor_of(pid: int) -> bool:
    me, seen = os.getpid(), 0
    while pid > 1 and seen < 64:
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return False
        if pid == me:
            return True
        seen += 1
    return False


def process_uid(pid: int) -> int:
    """The real uid owning ``pid``; TargetError if there is no such process."""
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        raise TargetError(f"no process with pid {pid}") from None
    except OSError as exc:
        raise TargetError(f"cannot inspect pid {pid}: {exc.strerror}") from None


def check_attach(pid: int) -> None:
    """Raise TargetError with what to do when ptrace rights over ``pid`` are clearly missing."""
    if pid <= 0:
        raise TargetError(f"invalid pid {pid}")
    uid = process_uid(pid)
    cap = _has_ptrace_cap()
    if uid != os.geteuid() and not cap:
        raise TargetError(f"pid {pid} belongs to another user (uid {uid}): run mcpprof as that user, or with sudo")
    scope = _yama_scope()
    if scope >= 3:
        raise TargetError("kernel.yama.ptrace_scope=3 forbids attaching to any process until reboot; "
                          "start the server under `mcpprof run` and use agent mode instead")
    if scope == 2 and not cap:
        raise TargetError("kernel.yama.ptrace_scope=2 allows only admins to attach: run with sudo, or start "
                          "the server under `mcpprof run` (agent mode needs no ptrace)")
    if scope == 1 and not cap and not _is_ancestor_of(pid):
        raise TargetError(f"kernel.yama.ptrace_scope=1 blocks attaching to pid {pid} (not a child of mcpprof): "
                          "run with sudo, or `sudo sysctl kernel.yama.ptrace_scope=0`, or start the server "
                          "under `mcpprof run` (agent mode needs no ptrace)")


def _explain_failure(pid: int, rc: int, stderr: str) -> str:
    text = " ".join(stderr.split())
    low = text.lower()
    if "permission denied" in low or "operation not permitted" in low or "os error 1)" in low:
        if os.path.exists("/.dockerenv") or os.environ.get("KUBERNETES_SERVICE_HOST"):
            return (f"py-spy was not allowed to read pid {pid}: this container lacks CAP_SYS_PTRACE; "
                    "run it with --cap-add SYS_PTRACE (Kubernetes: securityContext.capabilities.add: [SYS_PTRACE])")
        return (f"py-spy was not allowed to read pid {pid} ({text[-160:]}): run with sudo, or give py-spy "
                "CAP_SYS_PTRACE; in a container add --cap-add SYS_PTRACE")
    if "no such process" in low or "failed to find process" in low or not os.path.exists(f"/proc/{pid}"):
        return f"pid {pid} exited (or never existed) while py-spy was attaching"
    if "python version" in low or "failed to find python" in low or "interpreter" in low:
        return f"py-spy could not find a Python interpreter in pid {pid}: is it a CPython process? ({text[-160:]})"
    return f"py-spy failed on pid {pid} (exit {rc}): {text[-200:] or 'no message'}"


# -- converting -----------------------------------------------------------------------------------

def parse_frame(text: str) -> Frame:
    """``func (path:line)`` -> Frame; anything else becomes a bare function name."""
    text = text.strip()
    if text.endswith(")") and " (" in text:
        func, _, loc = text[:-1].partition(" (")  # qualified names have no spaces; paths may
        path, sep, line = loc.rpartition(":")
        if sep and line.isdigit():
            return Frame(func, path, int(line))
        return Frame(func, loc, 0)
    return Frame(text)


def _parse_thread(head: str) -> Tuple[str, str]:
    """``thread (7809): MainThread`` -> ("7809", "MainThread"); other roots -> ("", "")."""
    if not head.startswith("thread ("):
        return "", ""
    tid, _, rest = head[len("thread ("):].partition(")")
    name = rest.lstrip(":").strip() or "(unnamed)"
    return tid, name


def convert_raw(text: str, rate_hz: float, *, pid: Optional[int] = None,
                metadata: Optional[Dict[str, Any]] = None) -> Profile:
    """A profile from py-spy's raw (folded) output, see the module docstring."""
    period_ns = int(round(1e9 / rate_hz))
    builder = ProfileBuilder([SAMPLES, CPU])
    attributor = FrameAttributor()
    idle = unrooted = total = 0
    threads: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.rstrip()
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        parts = stack_text.split(";")
        labels: List[Tuple[str, str]] = []
        if parts and parts[0].startswith("process "):
            parts = parts[1:]
        tid, name = _parse_thread(parts[0]) if parts else ("", "")
        if name:
            parts = parts[1:]
            threads[tid] = name
            labels.append((L.THREAD_NAME, name))
        frames = [parse_frame(p) for p in parts if p]
        total += count
        if not frames or is_idle_leaf(frames[-1]):
            idle += count
            continue
        labels += attributor.labels(frames)
        if not is_rooted(frames):
            unrooted += count
            frames.insert(0, Frame(UNROOTED_FUNCTION))
        builder.add(frames, (count, count * period_ns), tuple(sorted(labels)))
    profile = builder.build()
    md: Dict[str, Any] = {
        "collector": "pyspy", "rate_hz": float(rate_hz), "period_ns": period_ns,
        "samples": total - idle, "idle_samples_dropped": idle, "unrooted_samples": unrooted,
        "threads": sorted(set(threads.values())),
        "cpu_estimate": "non-idle samples x period (py-spy drops idle threads)",
        "attribution": "frames", "attributed_stacks": attributor.attributed,
        "unattributed_stacks": attributor.unattributed,
    }
    if pid is not None:
        md["pid"] = pid
    md.update(metadata or {})
    profile.metadata = md
    return profile


# -- running --------------------------------------------------------------------------------------

def _record_args(exe: str, pid: int, rate_hz: float, out: str, duration: Optional[float],
                 nonblocking: bool, subprocesses: bool) -> List[str]:
    args = [exe, "record", "--pid", str(pid), "--rate", str(int(round(rate_hz))), "--format", "raw",
            "--threads", "--full-filenames", "--output", out]
    if duration is not None:
        args += ["--duration", str(max(1, int(round(duration))))]
    if nonblocking:
        args.append("--nonblocking")
    if subprocesses:
        args.append("--subprocesses")
    return args


class PySpyCollector:
    """Collector protocol for py-spy: ``start()`` launches ``py-spy record`` against ``pid``,
    ``stop()`` interrupts it (py-spy then writes its output), ``snapshot()`` converts it."""

    def __init__(self, rate_hz: float = 100.0, *, pid: int, nonblocking: bool = False,
                 subprocesses: bool = False):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        self.rate_hz, self.pid = float(rate_hz), int(pid)
        self.nonblocking, self.subprocesses = nonblocking, subprocesses
        self._proc: Optional[subprocess.Popen] = None
        self._dir = tempfile.mkdtemp(prefix="mcpprof-pyspy-")
        self._out = os.path.join(self._dir, "raw.txt")
        self._err = os.path.join(self._dir, "stderr.txt")
        self._start_ns = 0
        self._duration_ns = 0
        self._result: Optional[Profile] = None

    def start(self) -> "PySpyCollector":
        exe = find_pyspy()
        check_attach(self.pid)
        self._start_ns = time.time_ns()
        with open(self._err, "wb") as err:
            self._proc = subprocess.Popen(
                _record_args(exe, self.pid, self.rate_hz, self._out, None, self.nonblocking, self.subprocesses),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        return self

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        self._duration_ns = time.time_ns() - self._start_ns
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def snapshot(self) -> Profile:
        if self._result is not None:
            return self._result
        proc = self._proc
        if proc is None:
            raise TargetError("py-spy was not started")
        if proc.poll() is None:
            raise TargetError("py-spy is still recording: stop it before taking its profile")
        stderr = _read(self._err)
        text = _read(self._out)
        if not text and proc.returncode not in (0, None, -signal.SIGINT):
            raise TargetError(_explain_failure(self.pid, proc.returncode, stderr))
        self._result = convert_raw(text, self.rate_hz, pid=self.pid, metadata={
            "start_ns": self._start_ns, "duration_ns": self._duration_ns,
            "nonblocking": self.nonblocking, "command": _cmdline(self.pid)})
        shutil.rmtree(self._dir, ignore_errors=True)
        return self._result


def record(pid: int, seconds: float, rate_hz: float = 100.0, *, nonblocking: bool = False,
           subprocesses: bool = False) -> Profile:
    """Sample ``pid`` for ``seconds`` with py-spy and return the converted profile."""
    exe = find_pyspy()
    check_attach(pid)
    with tempfile.TemporaryDirectory(prefix="mcpprof-pyspy-") as tmp:
        out = os.path.join(tmp, "raw.txt")
        start = time.time_ns()
        proc = subprocess.run(_record_args(exe, pid, rate_hz, out, seconds, nonblocking, subprocesses),
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              timeout=seconds + 60)
        text = _read(out)
        if proc.returncode != 0 and not text:
            raise TargetError(_explain_failure(pid, proc.returncode, proc.stderr.decode(errors="replace")))
        return convert_raw(text, rate_hz, pid=pid, metadata={
            "start_ns": start, "duration_ns": time.time_ns() - start, "nonblocking": nonblocking,
            "command": _cmdline(pid)})


def dump(pid: int) -> List[Dict[str, Any]]:
    """Every thread's current stack (``py-spy dump --json``): dicts with ``thread_name``,
    ``thread_id``, ``active`` and ``frames`` (root first, as :class:`Frame`)."""
    exe = find_pyspy()
    check_attach(pid)
    proc = subprocess.run([exe, "dump", "--pid", str(pid), "--json"], stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=60)
    if proc.returncode != 0:
        raise TargetError(_explain_failure(pid, proc.returncode, proc.stderr.decode(errors="replace")))
    try:
        threads = json.loads(proc.stdout)
    except ValueError:
        raise TargetError(f"py-spy dump gave unreadable output for pid {pid}") from None
    out = []
    for t in threads:
        frames = [Frame(str(f.get("name", "?")), str(f.get("filename", "")), int(f.get("line") or 0))
                  for f in reversed(t.get("frames") or [])]
        out.append({"thread_name": t.get("thread_name") or "(unnamed)", "thread_id": t.get("thread_id"),
                    "native_id": t.get("os_thread_id"), "active": bool(t.get("active")), "frames": frames})
    return out


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return " ".join(a.decode(errors="replace") for a in f.read().split(b"\0") if a)
    except OSError:
        return ""


__all__ = ["PySpyCollector", "record", "dump", "convert_raw", "parse_frame", "check_attach", "find_pyspy",
           "pyspy_check", "process_uid"]
