"""Build configuration beyond pyproject.toml: mcpprof's optional C extensions.

* ``mcpprof.collect._allocsample``: the ``sampled`` memory backend (else it falls back to tracemalloc);
* ``mcpprof.mcp._hooks``: the per-request hooks in C (else ``mcpprof.mcp.context`` runs its pure-Python
  path, several times more overhead per request);
* ``mcpprof.collect._walk``: the sampler's stack walk in C (else it walks frames in Python).

``optional=True``: where no C compiler (or no Python headers) is found, the build prints a warning
and installs mcpprof without them.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mcpprof.collect._allocsample", ["mcpprof/collect/_allocsample.c"],
                             depends=["mcpprof/collect/_allocsample_tables.h", "mcpprof/collect/_allocsample_py.h"],
                             extra_compile_args=["-O2"], optional=True),
                         Extension("mcpprof.mcp._hooks", ["mcpprof/mcp/_hooks.c"],
                                   depends=[f"mcpprof/mcp/_hooks_{part}.h" for part in ("tag", "step", "wrap")],
                                   extra_compile_args=["-O2"], optional=True),
                         Extension("mcpprof.collect._walk", ["mcpprof/collect/_walk.c"],
                                   depends=["mcpprof/collect/_walk_caches.h"], extra_compile_args=["-O2"],
                                   optional=True),
                         Extension("mcpprof.collect._timer", ["mcpprof/collect/_timer.c"],
                                   extra_compile_args=["-O2"], optional=True)])
