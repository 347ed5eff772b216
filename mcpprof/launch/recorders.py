"""Plug-ins the agent runs beside its CPU collector, one registry each.

* ``RECORDERS``: side recorders that add data to every profile the agent writes (memory over time,
  GC pauses, ...). A recorder is built with ``factory(agent)`` and has ``start()``, ``stop()`` and
  ``contribute(profile, limit=None)`` (which puts its data into ``profile.extras`` or
  ``profile.metadata``; ``limit``: a periodic write keeps only that many of the latest events).
* ``SERVICES``: long-running helpers started with the agent (the control channel, ...), built
  with ``factory(agent)``, with ``start()`` and ``stop()``.

Which ones run comes from ``AgentConfig.recorders`` / ``AgentConfig.services`` (comma-separated
names; unknown names are ignored with a note on stderr). Everything here runs inside the server:
stdlib only, never raises into it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

Factory = Callable[[Any], Any]


def _lazy(module: str) -> Factory:
    """A factory that imports ``mcpprof.<module>`` only when the agent builds the plug-in."""
    def build(agent: Any) -> Any:
        import importlib

        return importlib.import_module(f"mcpprof.{module}").factory(agent)
    return build


RECORDERS: Dict[str, Factory] = {
    "gc_pauses": _lazy("memory.gcpauses"),              # profile.extras["gc_pauses"]
    "memory_timeline": _lazy("memory.timeline"),        # profile.extras["memory_timeline"]
    "slowest": _lazy("collect.slowest"),                # profile.extras["slowest"]: slowest requests' samples
    "asyncwait": _lazy("collect.asyncwait"),            # profile.extras["asyncwait"]: where requests wait
}
SERVICES: Dict[str, Factory] = {
    "memctl": _lazy("memory.control"),                  # memory commands from mcpprof leaks/memory
    "control": _lazy("launch.channel"),                 # control socket: mcpprof attach / ls / dump
}

#: What the agent runs when the configuration does not say.
DEFAULT_RECORDERS = "gc_pauses,memory_timeline,slowest"
DEFAULT_SERVICES = "control"
