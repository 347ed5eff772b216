"""Plug-ins the agent runs beside its CPU collector, one registry each.

* ``RECORDERS``: side recorders that add data to every profile the agent writes (memory over time,
  GC pauses, ...). A recorder is built with ``factory(agent)`` and has ``start()``, ``stop()`` and
  ``contribute(profile)`` (which puts its data into ``profile.extras`` or ``profile.metadata``).
* ``SERVICES``: long-running helpers started with the agent (the control channel, ...), built
  with ``factory(agent)``, with ``start()`` and ``stop()``.

Which ones run comes from ``AgentConfig.recorders`` / ``AgentConfig.services`` (comma-separated
names; unknown names are ignored with a note on stderr). Everything here runs inside the server:
stdlib only, never raises into it.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

Factory = Callable[[Any], Any]

RECORDERS: Dict[str, Factory] = {}
SERVICES: Dict[str, Factory] = {}

#: What the agent runs when the configuration does not say.
DEFAULT_RECORDERS = ""
DEFAULT_SERVICES = ""
