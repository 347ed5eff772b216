"""A lean MCP client over stdio, for driving a server under measurement.

The official SDK client costs about 200 µs of CPU per request; on a small machine shared with the
server under test that perturbs the measurement. This client does the minimum: it spawns the server,
writes one JSON-RPC object per line to its stdin, reads newline-delimited JSON from its stdout in a
protocol callback (no reader task, no streams) and hands each reply to the future or callback
registered under its request id, so any number of requests can be in flight over the one pipe.
Timeouts are swept every 20 ms rather than timed per request. Stdlib only.

Every line the server writes to stdout is checked to be a JSON-RPC message; the rest are counted in
:attr:`StdioClient.invalid_lines` (the first few kept in :attr:`StdioClient.invalid_samples`).

Failed calls raise :class:`~.rpc.CallError` by kind (:data:`~.rpc.ERROR_KINDS`); what is not about
pipes (ids, answers, timeouts, the typed helpers) is :class:`~.rpc.RpcClient`'s.

    async with StdioClient([sys.executable, "server.py"], stderr=subprocess.DEVNULL) as c:
        await c.initialize()
        result = await c.call_tool("echo", {"text": "hi"})
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
from typing import IO, Any, Mapping, Sequence, Union

from .._version import __version__
from ..errors import TargetError
from .rpc import DEFAULT_TIMEOUT, ERROR_KINDS, PROTOCOL_VERSION, CallError, ReplyTarget, RpcClient

_KEEP_INVALID = 5
_KEEP_STDERR = 64 * 1024
_READ_SIZE = 64 * 1024

StderrTarget = Union[None, int, IO[Any]]


class _Stdout(asyncio.Protocol):
    """The server's stdout: lines straight to the client, in the read callback.

    Pipes are connected with ``connect_read_pipe`` rather than ``subprocess_exec``, whose transport
    hands every chunk on through one more ``call_soon``: an extra event-loop turn per answer.
    """

    def __init__(self, client: "StdioClient"):
        self.client = client
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        if self.buffer:
            data = self.buffer + data
        lines = data.split(b"\n")
        self.buffer = lines.pop()
        if len(lines) == 1:
            self.client._handle_line(lines[0])
            return
        # several answers at once: the requests their callbacks send go out in one write
        client = self.client
        client._held = held = []
        try:
            for line in lines:
                client._handle_line(line)
        finally:
            client._held = None
            if held and client._stdin is not None and not client._stdin.is_closing():
                client._stdin.write(b"".join(held))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.buffer:  # a last line without a newline
            self.client._handle_line(self.buffer)
            self.buffer = b""
        self.client._stdout_lost()


class _Stderr(asyncio.Protocol):
    def __init__(self, client: "StdioClient"):
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.client._stderr_received(data)


class StdioClient(RpcClient):
    """Spawn ``command`` and talk MCP to it over its stdin/stdout; an async context manager.

    ``stderr`` is where the server's stderr goes: ``None`` inherits ours, ``subprocess.DEVNULL``
    drops it, a file or fd receives it, ``subprocess.PIPE`` keeps its last 64 KiB in
    :attr:`stderr_tail`.
    """

    def __init__(self, command: Sequence[str], *, env: Mapping[str, str] | None = None,
                 cwd: str | os.PathLike[str] | None = None, stderr: StderrTarget = None,
                 timeout: float = DEFAULT_TIMEOUT):
        if not command:
            raise ValueError("an empty server command")
        super().__init__()
        self.command = [str(a) for a in command]
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stderr = stderr
        self.timeout = timeout
        #: the server's ``subprocess.Popen`` (use ``.pid``; do not ``wait()`` on it)
        self.process: subprocess.Popen[bytes] | None = None
        self.invalid_lines = 0
        self.invalid_samples: list[bytes] = []
        self.stderr_tail = b""
        self.initialize_result: dict[str, Any] | None = None
        self._stdin: asyncio.WriteTransport | None = None
        self._pipes: list[asyncio.BaseTransport] = []
        self._exited: asyncio.Future[None] | None = None
        self._stdout_closed = False
        self._held: list[bytes] | None = None  # writes held while a chunk of answers is handled
        self._dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        self._loads = json.loads

    # -- life cycle --------------------------------------------------------------------------------

    async def start(self) -> "StdioClient":
        loop = asyncio.get_running_loop()
        try:
            proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=self.stderr, env=self.env, cwd=self.cwd, bufsize=0)
        except OSError as exc:
            raise TargetError(f"cannot start the server {self.command[0]!r}: {exc.strerror or exc}") from None
        self.process = proc
        self._exited = loop.create_future()
        threading.Thread(target=self._wait_exit, args=(loop, proc), name="mcpprof-stdio-wait",
                         daemon=True).start()
        assert proc.stdin is not None and proc.stdout is not None
        self._stdin, _ = await loop.connect_write_pipe(asyncio.Protocol, proc.stdin)
        stdout, _ = await loop.connect_read_pipe(lambda: _Stdout(self), proc.stdout)
        self._pipes = [self._stdin, stdout]
        if hasattr(stdout, "max_size"):
            # asyncio reads pipes 256 KiB at a time: every read allocates (mmap), shrinks (mremap) and
            # frees (munmap) a buffer above malloc's mmap threshold, three syscalls per answer that
            # cost more client CPU than the rest of a call. 64 KiB stays on the heap.
            stdout.max_size = _READ_SIZE  # type: ignore[attr-defined]
        if proc.stderr is not None:
            err, _ = await loop.connect_read_pipe(lambda: _Stderr(self), proc.stderr)
            self._pipes.append(err)
        self._start_sweeper()
        return self

    def _wait_exit(self, loop: asyncio.AbstractEventLoop, proc: "subprocess.Popen[bytes]") -> None:
        proc.wait()
        try:
            loop.call_soon_threadsafe(self._process_exited)
        except RuntimeError:  # the loop is closed
            pass

    def _process_exited(self) -> None:
        if not self._stdout_closed:
            # Answers written just before the exit may still be in the pipe: give them a moment
            # (a grandchild holding stdout open would otherwise keep requests waiting).
            asyncio.get_running_loop().call_later(1.0, self._lost, "the server exited")
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(None)

    def _stdout_lost(self) -> None:
        self._stdout_closed = True
        self._lost("the server closed its stdout")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    @property
    def returncode(self) -> int | None:
        return self.process.returncode if self.process is not None else None

    async def aclose(self, grace: float = 5.0) -> int | None:
        """Close the server's stdin and wait ``grace`` s for it to exit, then SIGTERM, then SIGKILL.
        Returns the exit code (negative: killed by that signal)."""
        proc, exited = self.process, self._exited
        if proc is None or exited is None:
            return None
        if self._stdin is not None and not self._stdin.is_closing():
            self._stdin.close()
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and proc.returncode is None:
                try:
                    proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            try:
                await asyncio.wait_for(asyncio.shield(exited), grace)
                break
            except asyncio.TimeoutError:
                continue
        self._lost("the client closed the connection")
        for pipe in self._pipes:
            pipe.close()
        return proc.returncode

    # -- requests -----------------------------------------------------------------------------------

    def notify(self, method: str, params: Mapping[str, Any] | None = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self._write(msg)

    def send(self, method: str, params: Mapping[str, Any] | None, on_reply: ReplyTarget,
             timeout: float | None = None) -> int:
        """Send a request without waiting; returns its id (see :meth:`RpcClient.send`)."""
        rid = self._register(method, on_reply, timeout)
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        try:
            self._write(msg)  # no answer can arrive before control returns to the loop
        except CallError:
            del self._pending[rid]
            raise
        return rid

    async def initialize(self, timeout: float | None = None,
                         client_info: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The legacy handshake: ``initialize`` (protocol 2025-11-25), then ``notifications/initialized``."""
        params = {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                  "clientInfo": dict(client_info or {"name": "mcpprof", "version": __version__})}
        self.initialize_result = await self.request("initialize", params, timeout)
        self.notify("notifications/initialized")
        return self.initialize_result

    @property
    def server_info(self) -> dict[str, Any]:
        return (self.initialize_result or {}).get("serverInfo") or {}

    # -- internals (called from the protocol) --------------------------------------------------------

    def _write(self, msg: Mapping[str, Any]) -> None:
        if self._closed_reason is not None or self._stdin is None or self._stdin.is_closing():
            raise CallError("transport", f"{msg.get('method')}: {self._closed_reason or 'not connected'}")
        if self._held is not None:
            self._held.append(self._dumps(msg).encode() + b"\n")
        else:
            self._stdin.write(self._dumps(msg).encode() + b"\n")

    def _handle_line(self, line: bytes) -> None:
        try:
            msg = self._loads(line)
        except ValueError:
            msg = None
        if type(msg) is not dict or msg.get("jsonrpc") != "2.0":
            self._invalid(line)
            return
        if "id" in msg and ("result" in msg or "error" in msg):
            self._answer(msg)
        elif isinstance(msg.get("method"), str):
            self._server_message(msg)
        else:
            self._invalid(line)

    def _reply(self, message: dict[str, Any]) -> None:
        self._write(message)

    def _invalid(self, line: bytes) -> None:
        self.invalid_lines += 1
        if len(self.invalid_samples) < _KEEP_INVALID:
            self.invalid_samples.append(line[:200])

    def _stderr_received(self, data: bytes) -> None:
        self.stderr_tail = (self.stderr_tail + data)[-_KEEP_STDERR:]


__all__ = ["StdioClient", "CallError", "ERROR_KINDS", "PROTOCOL_VERSION", "DEFAULT_TIMEOUT", "ReplyTarget"]
