"""Launch a server under the agent with the memory control channel, for the ``leaks`` and
``memory`` jobs: one async context manager that yields the client, the control client and the tools."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Dict, List, Optional

from ..errors import TargetError, UsageError
from ..launch.config import AgentConfig
from ..launch.run import agent_blockers, agent_env, resolve_command
from ..memory.control import ENV_DIR, ControlClient, ControlError

EXAMPLE_COMMAND = [sys.executable, "-m", "mcpprof.examples.server"]
INIT_TIMEOUT_S = 30.0


@dataclass
class Launched:
    client: Any          # mcpprof.bench.client.StdioClient
    control: ControlClient
    tools: List[Dict[str, Any]]
    pid: int
    command: List[str]


def server_command(command: Optional[List[str]]) -> List[str]:
    if not command:
        if importlib.util.find_spec("mcp") is None:
            raise UsageError("the bundled example server needs the MCP SDK: pip install 'mcpprof[example]'")
        return list(EXAMPLE_COMMAND)
    cmd = resolve_command(command)
    blocker = agent_blockers(cmd)
    if blocker:
        raise UsageError(blocker)
    return cmd


@contextlib.asynccontextmanager
async def launch(command: List[str], raw: Path, log: Any, recorders: str = "",
                 extra_env: Optional[Dict[str, str]] = None) -> AsyncIterator[Launched]:
    """Start ``command`` with the agent (CPU sampler at 10 Hz, the ``memctl`` service), initialize
    it over stdio and list its tools. Errors become one-line :class:`TargetError` messages."""
    from ..bench.client import StdioClient
    from .profile import _start_failure

    ctl_dir = raw / "memctl"
    ctl_dir.mkdir(parents=True, exist_ok=True)
    # Allocation sites are the innermost Python frame: the pure-Python request hooks allocate what
    # they keep per request (tags, ids) in mcpprof's own frames, which the memory views leave out;
    # the C hooks would allocate them under the SDK frame that called them, as if the server kept them.
    config = AgentConfig(out_dir=str(raw), rate_hz=10.0, flush_s=0.0, quiet=True, command=" ".join(command),
                         recorders=recorders, services="memctl",
                         extra={ENV_DIR: str(ctl_dir), "MCPPROF_PURE_PYTHON": "1", **(extra_env or {})})
    client = StdioClient(command, env=agent_env(config), stderr=log)
    try:
        await client.start()
    except OSError as exc:
        raise TargetError(f"cannot start the server: {exc}") from None
    try:
        try:
            await __import__("asyncio").wait_for(client.initialize(), INIT_TIMEOUT_S)
        except Exception as exc:
            code = await client.aclose()
            raise TargetError(_start_failure(exc, code, log.name)) from None
        control = ControlClient(str(ctl_dir))
        try:
            pid = await control.wait_ready(timeout=10.0)
        except ControlError:
            raise TargetError("the server answered but the mcpprof agent did not load in it (does it import "
                              f"the MCP SDK? is it a CPython started with -E/-I/-S?); server log: {log.name}") from None
        tools = await client.list_tools()
        yield Launched(client, control, tools, pid, command)
    finally:
        await client.aclose()


def tail_of(path: str) -> str:
    try:
        lines = [ln for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:200] if lines else ""
    except OSError:
        return ""


def default_out_dir(kind: str) -> str:
    import time

    return os.path.join("mcpprof-out", f"{kind}-" + time.strftime("%Y%m%d-%H%M%S"))
