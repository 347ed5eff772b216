"""Attach to a running server: find instrumented servers, talk to their control channel, and
:func:`profile_pid` (one call whatever the target).

* If the process runs the mcpprof agent (``mcpprof run``), its control socket is found in the
  per-user runtime folder and a profiling window is opened through it: per-request tags, exact
  per-request CPU, any in-process mode (``sample``, ``exact``, ``pyinstrument``).
* Otherwise py-spy samples it from outside (``pyspy``): threads labelled, tools found by frames.

Runs in mcpprof's own process (the client side), never in the server.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from ..errors import TargetError, UsageError
from ..model.io import from_dict
from ..model.profile import Profile
from .channel import SOCKET_PREFIX, SOCKET_SUFFIX, socket_name

MODES = ("auto", "sample", "exact", "pyinstrument", "pyspy")
MAX_REPLY = 1 << 30


def candidate_dirs(uid: Optional[int] = None) -> List[str]:
    """Folders where servers of ``uid`` (default: ours) may have put their control sockets:
    the runtime dir under $XDG_RUNTIME_DIR and under the temp dir (a host may strip the env)."""
    uid = os.getuid() if uid is None else uid
    name = f"mcpprof-{uid}"
    bases = [os.environ.get("XDG_RUNTIME_DIR") if uid == os.getuid() else None, f"/run/user/{uid}",
             tempfile.gettempdir(), "/tmp"]
    out: List[str] = []
    for base in bases:
        if base:
            path = os.path.join(base, name)
            if path not in out:
                out.append(path)
    return out


def _uid_of(pid: int) -> Optional[int]:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def socket_for(pid: int) -> Optional[str]:
    """The control socket of ``pid`` if it runs the agent, else None."""
    uid = _uid_of(pid)
    if uid is None:
        return None
    for d in candidate_dirs(uid):
        path = os.path.join(d, socket_name(pid))
        try:
            if os.path.exists(path):
                return path
        except OSError:
            continue
    return None


class ControlClient:
    """One connection to a server's control channel; :meth:`call` sends a command, returns the reply."""

    def __init__(self, path: str, pid: int = 0, timeout: float = 10.0):
        self.path, self.pid = path, pid
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except PermissionError:
            self.sock.close()
            raise TargetError(f"permission denied on {path}: the server belongs to another user; "
                              "run mcpprof as that user (or root)") from None
        except (ConnectionRefusedError, FileNotFoundError):
            self.sock.close()
            raise TargetError(f"pid {pid or '?'} is not listening on {path} (the server has exited?)") from None
        except OSError as exc:
            self.sock.close()
            raise TargetError(f"cannot connect to {path}: {exc.strerror or exc}") from None
        self._buf = b""

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "ControlClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def call(self, cmd: str, timeout: Optional[float] = None, **args: Any) -> Dict[str, Any]:
        """Send ``cmd``; return the reply, or raise TargetError with the server's error message."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            self.sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            while b"\n" not in self._buf:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    raise TargetError(f"pid {self.pid or '?'} closed the control connection")
                self._buf += chunk
                if len(self._buf) > MAX_REPLY:
                    raise TargetError("reply from the control channel is too large")
        except socket.timeout:
            raise TargetError(f"pid {self.pid or '?'} did not answer {cmd!r} in time") from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise TargetError(f"pid {self.pid or '?'} closed the control connection") from None
            raise TargetError(f"control channel error: {exc.strerror or exc}") from None
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except ValueError:
            raise TargetError("unreadable reply from the control channel") from None
        if not reply.get("ok"):
            raise TargetError(f"pid {self.pid or '?'}: {reply.get('error', 'command failed')}")
        return reply


def connect(pid: int, timeout: float = 10.0) -> ControlClient:
    path = socket_for(pid)
    if path is None:
        raise TargetError(f"pid {pid} runs no mcpprof agent (no control socket): start it with `mcpprof run`")
    return ControlClient(path, pid, timeout)


@dataclass
class ServerInfo:
    pid: int
    socket: str
    info: Dict[str, Any] = field(default_factory=dict)
    error: str = ""


def find_servers(timeout: float = 3.0) -> List[ServerInfo]:
    """Instrumented servers on this machine reachable by us (stale sockets of ours are removed)."""
    uids = {os.getuid()}
    if os.geteuid() == 0:  # root may reach every user's servers
        for d in glob.glob(os.path.join(tempfile.gettempdir(), "mcpprof-*")) + glob.glob("/run/user/*/mcpprof-*"):
            tail = os.path.basename(d)[len("mcpprof-"):]
            if tail.isdigit():
                uids.add(int(tail))
    found: Dict[int, ServerInfo] = {}
    for uid in sorted(uids):
        for d in candidate_dirs(uid):
            for path in sorted(glob.glob(os.path.join(d, f"{SOCKET_PREFIX}*{SOCKET_SUFFIX}"))):
                tail = os.path.basename(path)[len(SOCKET_PREFIX):-len(SOCKET_SUFFIX)]
                if not tail.isdigit() or int(tail) in found:
                    continue
                pid = int(tail)
                if not os.path.exists(f"/proc/{pid}"):
                    _remove_stale(path)
                    continue
                entry = ServerInfo(pid, path)
                try:
                    with ControlClient(path, pid, timeout) as client:
                        entry.info = client.call("ping")
                except TargetError as exc:  # kept with its error: a busy server may answer late
                    entry.error = str(exc)
                found[pid] = entry
    return [found[p] for p in sorted(found)]


def _remove_stale(path: str) -> None:
    try:
        if os.stat(path).st_uid == os.getuid():
            os.unlink(path)
    except OSError:
        pass


def profile_pid(pid: int, seconds: float = 10.0, mode: str = "auto", *, rate_hz: Optional[float] = None,
                wait: bool = False, clock: str = "cpu",
                on_start: Optional[Callable[[Dict[str, Any]], None]] = None,
                on_stop: Optional[Callable[[], None]] = None) -> Profile:
    """Profile the running process ``pid`` for ``seconds`` and return the profile.

    ``mode``: ``auto`` (the agent's own collector if the process runs the agent, else py-spy),
    ``sample`` / ``exact`` / ``pyinstrument`` (in-process: need the agent), or ``pyspy`` (from
    outside). ``wait`` adds the async wait view (agent only) in ``profile.extras["asyncwait"]``.
    ``on_start(info)`` is called once recording has begun, ``on_stop()`` just before it is asked to
    stop (building and sending the profile comes after).
    """
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    if not seconds > 0:
        raise UsageError("seconds must be positive")
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        raise TargetError(f"no process with pid {pid}")
    path = socket_for(pid) if mode != "pyspy" else None
    if path is not None:
        with ControlClient(path, pid, timeout=max(30.0, seconds + 30)) as client:
            args: Dict[str, Any] = {"wait": wait, "clock": clock}
            if mode != "auto":
                args["mode"] = mode
            if rate_hz is not None:
                args["rate_hz"] = rate_hz
            started = client.call("start", **args)
            if on_start is not None:
                on_start({"via": "agent", **started})
            time.sleep(seconds)
            if on_stop is not None:
                on_stop()
            reply = client.call("stop")
        return from_dict(reply["profile"])
    if mode not in ("auto", "pyspy"):
        raise TargetError(f"pid {pid} runs no mcpprof agent, so mode {mode!r} cannot run inside it: "
                          "start the server with `mcpprof run`, or use --mode pyspy")
    if wait:
        raise UsageError("the async wait view needs the mcpprof agent in the server (start it with `mcpprof run`)")
    from ..collect import pyspy_collector

    if on_start is not None:
        on_start({"via": "pyspy", "mode": "pyspy", "rate_hz": rate_hz or 100.0})
    return pyspy_collector.record(pid, seconds, rate_hz or 100.0)


def dump_pid(pid: int) -> Dict[str, Any]:
    """Every thread's stack of ``pid``; with the agent also every in-flight request and where it
    waits. Keys: ``via`` (agent|pyspy), ``threads`` [{thread, frames: [[func, file, line]...]}],
    ``requests`` (agent only)."""
    if pid <= 0 or not os.path.exists(f"/proc/{pid}"):
        raise TargetError(f"no process with pid {pid}")
    path = socket_for(pid)
    if path is not None:
        with ControlClient(path, pid) as client:
            reply = client.call("dump")
        reply["via"] = "agent"
        return reply
    from ..collect import pyspy_collector

    threads = pyspy_collector.dump(pid)
    return {"via": "pyspy", "pid": pid, "requests": None,
            "threads": [{"thread": t["thread_name"], "ident": t["thread_id"], "active": t["active"],
                         "frames": [[f.function, f.file, f.line] for f in t["frames"]]} for t in threads]}


__all__ = ["profile_pid", "dump_pid", "find_servers", "connect", "socket_for", "ControlClient", "ServerInfo",
           "candidate_dirs", "MODES"]
