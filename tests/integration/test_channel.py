"""The control channel of a real server under `mcpprof run`: commands, bad input, other users."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import sys
import time
from pathlib import Path
from typing import Any, List

import pytest

from mcpprof.bench.client import StdioClient
from mcpprof.bench.drive import CallSpec, drive
from mcpprof.launch.attach import ControlClient, find_servers, socket_for
from mcpprof.launch.channel import MAX_LINE, PARTIAL_TIMEOUT_S

pytestmark = pytest.mark.slow

PY = sys.executable
MIX = [CallSpec("tools/call", "cpu_async", {"n": 16}), CallSpec("tools/call", "echo", {"text": "x"}),
       CallSpec("tools/call", "sleep_io", {"ms": 5})]


def _command(out: Path) -> List[str]:
    return [PY, "-m", "mcpprof", "run", "--quiet", "--out", str(out), "--", PY, "-m", "mcpprof.examples.server"]


async def _wait_socket(pid: int) -> str:
    for _ in range(100):
        path = socket_for(pid)
        if path:
            return path
        await asyncio.sleep(0.05)
    raise AssertionError("no control socket appeared")


def _raw(path: str, data: bytes, close_write: bool = True, timeout: float = 15.0) -> List[dict]:
    """Send raw bytes on a fresh connection; return every reply line until the server closes."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        try:
            s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may refuse and close before we finish sending: read its reply anyway
        buf = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            pass
    return [json.loads(line) for line in buf.splitlines() if line.strip()]


def _as_nobody(fn: Any) -> str:
    """Run ``fn()`` in a forked child as uid/gid 65534; its return value (a string) or the error."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                out = fn()
            except Exception as exc:
                out = f"{type(exc).__name__}: {exc}"
            os.write(w, str(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    # Wait for the child, then read what it wrote without waiting for EOF: a process forked by
    # another thread meanwhile may still hold the write end until it execs.
    deadline = time.monotonic() + 60
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            break
        time.sleep(0.05)
    os.set_blocking(r, False)
    chunks = []
    try:
        while True:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        os.close(r)
    return b"".join(chunks).decode()


def test_commands_bad_messages_and_other_users(tmp_path: Path) -> None:
    async def go() -> None:
        async with StdioClient(_command(tmp_path / "out")) as c:
            await c.initialize()
            path = await _wait_socket(c.pid)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
            assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
            load = asyncio.create_task(drive(c, MIX, seconds=9.0, concurrency=8))
            loop = asyncio.get_running_loop()

            def checks() -> None:
                with ControlClient(path, c.pid) as cc:
                    ping = cc.call("ping")
                    assert ping["pid"] == c.pid and ping["mode"] == "sample"
                    assert ping["requests"] >= 1
                    status = cc.call("status")
                    assert status["windows"] == [] and status["active"]
                    for _ in range(100):  # until each kind of call has completed once (a loaded machine is slow)
                        lat = cc.call("latency")
                        names = {r["target"] for r in lat["since_start"]}
                        if {"cpu_async", "echo", "sleep_io"} <= names:
                            break
                        time.sleep(0.05)
                    assert {"cpu_async", "echo", "sleep_io"} <= names
                    row = next(r for r in lat["since_start"] if r["target"] == "sleep_io")
                    assert row["p50_ns"] >= 5_000_000 and row["count"] >= 1
                    started = cc.call("start", wait=True)
                    assert started["delta"] is True
                    time.sleep(0.5)
                    assert "window" in cc.call("latency")
                    snap = cc.call("snapshot")["profile"]
                    assert snap["metadata"]["window"]["delta"] is True
                    prof = cc.call("stop")["profile"]
                    assert prof["requests"] and prof["extras"].get("asyncwait")
                    dump = cc.call("dump")
                    assert any(t["thread"] == "MainThread" for t in dump["threads"])
                    # a bare word works; an unknown command is an error and the connection stays usable
                    with pytest.raises(Exception, match="unknown command"):
                        cc.call("nope")
                    assert cc.call("ping")["pid"] == c.pid
                # garbage, non-object JSON, invalid UTF-8: error replies, connection kept
                replies = _raw(path, b"\x00\xff garbage\n[1,2]\n{\"cmd\": 5}\nping\n")
                assert [r["ok"] for r in replies] == [False, False, False, True]
                # huge: one error, then closed
                replies = _raw(path, b"x" * (MAX_LINE + 10), close_write=False)
                assert len(replies) == 1 and "longer than" in replies[0]["error"]
                # half-written then closed: an error about the unfinished message
                replies = _raw(path, b'{"cmd": "pi')
                assert replies and "middle of a message" in replies[-1]["error"]
                # half-written and left hanging: an error after the timeout
                t0 = time.monotonic()
                replies = _raw(path, b'{"cmd": "pi', close_write=False, timeout=PARTIAL_TIMEOUT_S + 10)
                assert "incomplete message" in replies[-1]["error"]
                assert time.monotonic() - t0 >= PARTIAL_TIMEOUT_S - 0.5
                # another user: refused by the 0700 folder before the socket is reached ...
                out = _as_nobody(lambda: _raw(path, b"ping\n", timeout=5))
                assert "PermissionError" in out or "Permission denied" in out, out
                # ... and by the peer-credential check when the folder and socket are opened up
                folder = os.path.dirname(path)
                os.chmod(folder, 0o711)
                os.chmod(path, 0o666)
                try:
                    out = _as_nobody(lambda: _raw(path, b"ping\n", timeout=5))
                finally:
                    os.chmod(path, 0o600)
                    os.chmod(folder, 0o700)
                assert "uid 65534 may not control" in out, out
                servers = {s.pid: s for s in find_servers()}
                assert c.pid in servers and servers[c.pid].info["pid"] == c.pid

            await loop.run_in_executor(None, checks)
            result = await load
            assert sum(result.errors.values()) == 0 and result.calls > 50
            # the server still answers, and stdout stayed pure JSON-RPC throughout
            assert (await c.call_tool("echo", {"text": "after"}))["content"][0]["text"] == "after"
            assert c.invalid_lines == 0
            assert await c.aclose() == 0
        assert not os.path.exists(path), "the socket is removed when the server exits"

    asyncio.run(go())
