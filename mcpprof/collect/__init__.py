"""Collectors: the code that records profiles (see :mod:`mcpprof.collect.registry`).

``sampler`` is the default CPU collector: a stdlib-only thread inside the server that reads every
thread's stack with ``sys._current_frames()`` and weighs it by wall time and per-thread CPU time.
Importing this package does nothing; each collector loads its dependencies on first use.
"""
