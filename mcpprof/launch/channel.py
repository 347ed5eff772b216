"""The control channel: a Unix socket through which ``mcpprof attach/ls/dump`` reach a live agent.

The agent (service ``"control"``) listens on ``<runtime dir>/mcpprof-<pid>.sock``; the folder is
private to the user (0700), the socket 0600, and every connection's peer credentials
(``SO_PEERCRED``) must be this process's uid or root, else it gets an error reply and is closed.

Protocol: one request per line, a JSON object ``{"cmd": NAME, ...}`` (a bare word such as
``ping`` also works), at most :data:`MAX_LINE` bytes; one reply per line, ``{"ok": true, ...}`` or
``{"ok": false, "error": "..."}``. A line that is too long, not JSON, or not finished within
:data:`PARTIAL_TIMEOUT_S` seconds gets an error reply and the connection is closed; nothing a
client sends can disturb the server. Commands:

``ping``       pid, mcpprof version, mode, command, frameworks, uptime, requests served
``status``     ping plus windows open, in-flight requests and the sampler's counters
``latency``    live per-request latency (count, errors, mean/p50/p95/p99/max, CPU) since start,
               and in this connection's window if one is open
``start``      open a profiling window on this connection: ``mode``, ``rate_hz``, ``wait``
               (also sample the async wait view), ``clock`` (exact mode: cpu or wall)
``snapshot``   the window's profile so far (or the agent's whole profile with no window)
``stop``       the window's profile; the window is closed
``dump``       every thread's stack, and every in-flight request with its age and where it waits

A window belongs to its connection: when the client goes away the window is closed. Runs inside
the server: stdlib only, daemon threads, never prints, never raises into the server.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from .._version import __version__
from .collection_pause import gc_paused

MAX_LINE = 64 * 1024
PARTIAL_TIMEOUT_S = 5.0
IDLE_TIMEOUT_S = 3600.0
MAX_CONNECTIONS = 16
SOCKET_PREFIX = "mcpprof-"
SOCKET_SUFFIX = ".sock"
COMMANDS = ("ping", "status", "latency", "start", "snapshot", "stop", "dump")


def socket_name(pid: int) -> str:
    return f"{SOCKET_PREFIX}{pid}{SOCKET_SUFFIX}"


def peer_credentials(conn: socket.socket) -> tuple:
    """(pid, uid, gid) of the process at the other end of a Unix socket."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


class ProtocolError(Exception):
    """A malformed request: answered with an error; ``fatal`` ones close the connection."""

    def __init__(self, message: str, fatal: bool = False):
        super().__init__(message)
        self.fatal = fatal


class ControlChannel:
    """The ``control`` service of the agent; see the module docstring."""

    def __init__(self, agent: Any, directory: Optional[str] = None):
        self.agent = agent
        self.directory = directory
        self.path = ""
        self._sock: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._active = 0
        self._lock = threading.Lock()
        self.windows: List[Any] = []
        self.rejected = 0
        self.bad_messages = 0
        self.started_ns = time.time_ns()

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> None:
        directory = self.directory
        if directory is None:
            from .run import runtime_dir

            directory = str(runtime_dir())
        st = os.stat(directory)
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            raise PermissionError(f"{directory} is not private to this user; control channel not opened")
        path = os.path.join(directory, socket_name(os.getpid()))
        try:
            os.unlink(path)  # a stale socket of a dead process with our pid
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, 0o600)
        sock.listen(8)
        self._sock, self.path = sock, path
        self._thread = threading.Thread(target=self._accept_loop, name="mcpprof-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        if self.path:
            try:
                os.unlink(self.path)
            except OSError:
                pass
        for window in list(self.windows):
            window.close()

    # -- connections ----------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping:
            sock = self._sock
            if sock is None:
                return
            try:
                conn, _ = sock.accept()
            except OSError:
                if self._stopping:
                    return
                time.sleep(0.05)
                continue
            try:
                self._admit(conn)
            except Exception:
                _close(conn)

    def _admit(self, conn: socket.socket) -> None:
        pid, uid, _gid = peer_credentials(conn)
        if uid not in (os.getuid(), 0):
            self.rejected += 1
            _send(conn, {"ok": False, "error": f"permission denied: uid {uid} may not control this server"})
            _close(conn)
            return
        with self._lock:
            if self._active >= MAX_CONNECTIONS:
                _send(conn, {"ok": False, "error": "too many control connections; try again later"})
                _close(conn)
                return
            self._active += 1
        threading.Thread(target=self._serve, args=(conn, pid), name="mcpprof-control-conn", daemon=True).start()

    def _serve(self, conn: socket.socket, peer_pid: int) -> None:
        session: Dict[str, Any] = {"window": None, "peer_pid": peer_pid}
        try:
            for line in _lines(conn, self):
                try:
                    request = parse_request(line)
                    with gc_paused():  # a snapshot builds a whole profile: no collection meanwhile
                        reply = self.handle(request, session)
                except ProtocolError as exc:
                    self.bad_messages += 1
                    reply = {"ok": False, "error": str(exc)}
                except Exception as exc:  # a command failed: say so, keep serving
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:500]}
                if not _send(conn, reply):
                    break
        except ProtocolError as exc:
            self.bad_messages += 1
            _send(conn, {"ok": False, "error": str(exc)})
        except Exception:
            pass
        finally:
            window = session.get("window")
            if window is not None:
                self._drop_window(window)
            _close(conn)
            with self._lock:
                self._active -= 1

    def _drop_window(self, window: Any) -> None:
        try:
            window.close()
        finally:
            if window in self.windows:
                self.windows.remove(window)

    # -- commands -------------------------------------------------------------------------------
    def handle(self, request: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
        cmd = request.get("cmd")
        handler: Optional[Callable[[Dict[str, Any], Dict[str, Any]], Dict[str, Any]]] = \
            getattr(self, f"cmd_{cmd}", None) if cmd in COMMANDS else None
        if handler is None:
            raise ProtocolError(f"unknown command {str(cmd)[:40]!r}; known: {', '.join(COMMANDS)}")
        return handler(request, session)

    def cmd_ping(self, request: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
        from ..mcp import context, install

        agent = self.agent
        try:
            frameworks: Any = install.frameworks()
        except Exception:
            frameworks = []
        return {"ok": True, "pid": os.getpid(), "version": __version__, "mode": agent.config.mode,
                "rate_hz": agent.config.rate_hz, "command": agent.config.command or " ".join(sys.argv),
                "frameworks": frameworks, "uptime_s": round((time.time_ns() - agent.start_ns) / 1e9, 3),
                "requests": agent.requests_served(), "inflight": len({id(tag) for _, tag in context.inflight()}),
                "active": bool(agent.active and agent.sampler is not None and not agent.finished),
                "out": agent.path, "python": sys.version.split()[0]}

    def cmd_status(self, request: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
        reply = self.cmd_ping(request, session)
        sampler = self.agent.sampler
        reply.update(windows=[{"mode": w.mode, "delta": w.delta, "attached_by_pid": w.peer_pid}
                              for w in self.windows],
                     sampler=dict({k: getattr(sampler, k, None) for k in ("rate_hz", "timer", "is_running")},
                                  samples=getattr(sampler, "samples", None))  # the progress line's count
                     if sampler is not None else None,
                     rejected_peers=self.rejected, bad_messages=self.bad_messages)
        return reply

    def cmd_latency(self, request: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
        from .windows import latency_rows

        reply: Dict[str, Any] = {"ok": True, "since_start": latency_rows(self.agent.request_table())}
        window = session.get("window")
        if window is not None:
            with window._lock:
                reply["window"] = latency_rows(window.requests)
        return reply

    def cmd_start(self, request: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
        from .windows import Window

        if self.agent.sampler is None or self.agent.finished:
            raise ProtocolError("the agent is not profiling yet (the server has not imported the MCP SDK)")
        old = session.get("window")
        if old is not None:
            self._drop_window(old)
            session["window"] = None
        rate = request.get("rate_hz")
        if rate is not None and not (isinstance(rate, (int, float)) and 0 < rate <= 10_000):
            raise ProtocolError("rate_hz must be a number in (0, 10000]")
        clock = request.get("clock", "cpu")
        if clock not in ("cpu", "wall"):
            raise ProtocolError("clock must be 'cpu' or 'wall'")
        mode = request.get("mode")
        if mode is not None and not isinstance(mode, str):
            raise ProtocolError("mode must be a string")
        window = Window(self.agent, mode=mode, rate_hz=rate, wait=bool(request.get("wait")), clock=clock,
                        peer_pid=session.get("peer_pid", 0))
        session["window"] = window
        self.windows.append(window)
        return {"ok": True, "mode": window.mode, "delta": window.delta, "rate_hz": window.rate_hz,
                "started_ns": window.start_ns}

    def cmd_snapshot(self, request: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
        from ..model.io import to_dict

        window = session.get("window")
        if window is None:
            return {"ok": True, "profile": to_dict(self.agent.build_profile(False, "snapshot"))}
        if not window.delta and window.mode == "pyinstrument":
            raise ProtocolError("pyinstrument cannot be read while it runs: use stop")
        return {"ok": True, "profile": to_dict(window.profile(final=False))}

    def cmd_stop(self, request: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
        from ..model.io import to_dict

        window = session.get("window")
        if window is None:
            raise ProtocolError("no window is open on this connection: send start first")
        try:
            profile = window.profile(final=True)
        finally:
            session["window"] = None
            self._drop_window(window)
        return {"ok": True, "profile": to_dict(profile)}

    def cmd_dump(self, request: Dict[str, Any], session: Dict[str, Any]) -> Dict[str, Any]:
        from ..collect.asyncwait import inflight_requests, thread_stacks

        def frames(fs: List[Any]) -> List[List[Any]]:
            return [[f.function, f.file, f.line] for f in fs]

        threads = [dict(t, frames=frames(t["frames"])) for t in thread_stacks()
                   if t["ident"] != threading.get_ident()]
        requests = []
        for r in inflight_requests():
            r = dict(r)
            r["tasks"] = [dict(t, frames=frames(t["frames"])) for t in r["tasks"]]
            r["threads"] = [dict(t, frames=frames(t["frames"])) for t in r["threads"]]
            requests.append(r)
        return {"ok": True, "pid": os.getpid(), "threads": threads, "requests": requests}


# -- wire helpers ---------------------------------------------------------------------------------

def parse_request(line: bytes) -> Dict[str, Any]:
    """One request line -> dict with ``cmd``; ProtocolError for anything else."""
    text = line.strip()
    if not text:
        raise ProtocolError("empty message")
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        raise ProtocolError("message is not UTF-8") from None
    if not decoded.startswith("{"):
        word = decoded.split()[0] if decoded.split() else ""
        if word.isascii() and word.isalpha():
            return {"cmd": word.lower()}
        raise ProtocolError("message is not a JSON object nor a command word")
    try:
        request = json.loads(decoded)
    except ValueError:
        raise ProtocolError("message is not valid JSON") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ProtocolError('message must be a JSON object with a "cmd" string')
    return request


def _lines(conn: socket.socket, channel: ControlChannel) -> Any:
    """Yield complete request lines; ProtocolError (fatal) for oversized or unfinished ones."""
    buf = b""
    partial_since: Optional[float] = None
    idle_since = time.monotonic()
    conn.settimeout(0.5)
    while not channel._stopping:
        try:
            chunk = conn.recv(65536)
        except socket.timeout:
            now = time.monotonic()
            if buf and partial_since is not None and now - partial_since > PARTIAL_TIMEOUT_S:
                raise ProtocolError(f"incomplete message: no end of line within {PARTIAL_TIMEOUT_S:g} s",
                                    fatal=True)
            if not buf and now - idle_since > IDLE_TIMEOUT_S:
                return
            continue
        except OSError:
            return
        if not chunk:
            if buf.strip():
                raise ProtocolError("connection closed in the middle of a message", fatal=True)
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if len(line) > MAX_LINE:
                raise ProtocolError(f"message longer than {MAX_LINE} bytes", fatal=True)
            yield line
            idle_since = time.monotonic()
            partial_since = None
        if not buf:
            partial_since = None
        elif partial_since is None:
            partial_since = time.monotonic()
        if len(buf) > MAX_LINE:
            raise ProtocolError(f"message longer than {MAX_LINE} bytes", fatal=True)


def _send(conn: socket.socket, reply: Dict[str, Any]) -> bool:
    try:
        data = json.dumps(reply, default=str, separators=(",", ":")).encode() + b"\n"
        conn.settimeout(60)
        conn.sendall(data)
        conn.settimeout(0.5)
        return True
    except Exception:
        return False


def _close(conn: socket.socket) -> None:
    try:
        conn.close()
    except OSError:
        pass


def control_service(agent: Any) -> ControlChannel:
    """Factory registered as ``SERVICES["control"]``."""
    return ControlChannel(agent)


__all__ = ["ControlChannel", "ProtocolError", "parse_request", "peer_credentials", "socket_name", "MAX_LINE",
           "COMMANDS", "control_service"]


factory = control_service
