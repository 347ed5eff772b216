"""Sphinx configuration of mcpprof's documentation (``sphinx-build -W docs docs/_build/html``).

The CLI reference is generated from the click parser (sphinx-click) and the Python API from the
docstrings (autodoc); the build treats warnings as errors (tests/integration/test_docs.py).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

from mcpprof import __version__  # noqa: E402

project = "mcpprof"
author = "mcpprof contributors"
copyright = "mcpprof contributors, MIT licence"
version = release = __version__

extensions = ["sphinx.ext.autodoc", "sphinx_click"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path: list = []
# Offline: no intersphinx (a build must not fetch anything).
