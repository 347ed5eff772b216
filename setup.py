"""Build configuration beyond pyproject.toml: the optional C extension behind ``--backend sampled``.

``optional=True``: where no C compiler (or no Python headers) is found, the build prints a warning
and installs mcpprof without it; the ``sampled`` memory backend then falls back to tracemalloc.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("mcpprof.collect._allocsample", ["mcpprof/collect/_allocsample.c"],
                             depends=["mcpprof/collect/_allocsample_tables.h", "mcpprof/collect/_allocsample_py.h"],
                             extra_compile_args=["-O2"], optional=True)])
