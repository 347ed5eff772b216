"""The agent's configuration, passed from the launcher to the server through ``MCPPROF_*``
environment variables (the only channel that survives console scripts, ``uvx`` and hosts)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional

ENV_OUT = "MCPPROF_OUT"              # folder the agent writes profiles into
ENV_RATE = "MCPPROF_RATE"            # sampling rate in Hz
ENV_FLUSH = "MCPPROF_FLUSH"          # seconds between periodic flushes (0: only at exit)
ENV_START = "MCPPROF_START"          # "mcp" (when the MCP SDK is imported) or "now"
ENV_QUIET = "MCPPROF_QUIET"          # "1": no one-line notice on stderr
ENV_COMMAND = "MCPPROF_COMMAND"      # the server command, for the profile's metadata
ENV_STUB = "MCPPROF_STUB"            # the stub folder holding the generated sitecustomize
ENV_ORIG_PYTHONPATH = "MCPPROF_ORIG_PYTHONPATH"
ENV_MODE = "MCPPROF_MODE"            # CPU collector (a name in mcpprof.collect.registry)
ENV_RECORDERS = "MCPPROF_RECORDERS"  # side recorders (names in mcpprof.launch.recorders.RECORDERS)
ENV_SERVICES = "MCPPROF_SERVICES"    # services (names in mcpprof.launch.recorders.SERVICES)
ENV_EXACT_CPU = "MCPPROF_EXACT_CPU"  # "1": measure exact CPU per request (metered steps; costs more)


@dataclass
class AgentConfig:
    out_dir: str
    rate_hz: float = 100.0
    flush_s: float = 1.0
    start: str = "mcp"
    quiet: bool = False
    command: str = ""
    mode: str = "sample"
    recorders: Optional[str] = None  # None: recorders.DEFAULT_RECORDERS
    services: Optional[str] = None   # None: recorders.DEFAULT_SERVICES
    exact_cpu: bool = False          # exact CPU per request (mcpprof.mcp.context.exact_cpu)
    extra: Dict[str, str] = field(default_factory=dict)

    def to_env(self) -> Dict[str, str]:
        return {
            ENV_OUT: self.out_dir, ENV_RATE: repr(float(self.rate_hz)), ENV_FLUSH: repr(float(self.flush_s)),
            ENV_START: self.start, ENV_QUIET: "1" if self.quiet else "0", ENV_COMMAND: self.command,
            ENV_MODE: self.mode, ENV_EXACT_CPU: "1" if self.exact_cpu else "0",
            **({ENV_RECORDERS: self.recorders} if self.recorders is not None else {}),
            **({ENV_SERVICES: self.services} if self.services is not None else {}),
            **self.extra,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "AgentConfig":
        def num(key: str, default: float) -> float:
            try:
                return float(env.get(key, default))
            except ValueError:
                return default

        return cls(
            out_dir=env.get(ENV_OUT, ""), rate_hz=num(ENV_RATE, 100.0), flush_s=num(ENV_FLUSH, 1.0),
            start=env.get(ENV_START, "mcp"), quiet=env.get(ENV_QUIET, "0") == "1",
            command=env.get(ENV_COMMAND, ""), mode=env.get(ENV_MODE, "sample") or "sample",
            recorders=env.get(ENV_RECORDERS), services=env.get(ENV_SERVICES),
            exact_cpu=env.get(ENV_EXACT_CPU, "0") == "1",
        )
