"""The agent's configuration, passed from the launcher to the server through ``MCPPROF_*``
environment variables (the only channel that survives console scripts, ``uvx`` and hosts)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, Mapping

ENV_OUT = "MCPPROF_OUT"              # folder the agent writes profiles into
ENV_RATE = "MCPPROF_RATE"            # sampling rate in Hz
ENV_FLUSH = "MCPPROF_FLUSH"          # seconds between periodic flushes (0: only at exit)
ENV_START = "MCPPROF_START"          # "mcp" (when the MCP SDK is imported) or "now"
ENV_QUIET = "MCPPROF_QUIET"          # "1": no one-line notice on stderr
ENV_COMMAND = "MCPPROF_COMMAND"      # the server command, for the profile's metadata
ENV_STUB = "MCPPROF_STUB"            # the stub folder holding the generated sitecustomize
ENV_ORIG_PYTHONPATH = "MCPPROF_ORIG_PYTHONPATH"


@dataclass
class AgentConfig:
    out_dir: str
    rate_hz: float = 100.0
    flush_s: float = 1.0
    start: str = "mcp"
    quiet: bool = False
    command: str = ""
    extra: Dict[str, str] = field(default_factory=dict)

    def to_env(self) -> Dict[str, str]:
        return {
            ENV_OUT: self.out_dir, ENV_RATE: repr(float(self.rate_hz)), ENV_FLUSH: repr(float(self.flush_s)),
            ENV_START: self.start, ENV_QUIET: "1" if self.quiet else "0", ENV_COMMAND: self.command,
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
            command=env.get(ENV_COMMAND, ""),
        )
