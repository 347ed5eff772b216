"""The documentation builds with Sphinx, warnings as errors; the CLI reference comes from the parser
(every registered command has a section) and the API reference from the docstrings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("sphinx")
pytest.importorskip("sphinx_click")


def test_docs_build_with_warnings_as_errors(tmp_path: Path):
    out = tmp_path / "html"
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(ROOT / "docs"), str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    from mcpprof.cli.main import cli

    cli_page = (out / "cli.html").read_text()
    for name in cli.commands:
        assert f'id="mcpprof-{name}"' in cli_page, name
    api = (out / "api.html").read_text()
    for name in ("mcpprof.profile", "mcpprof.load", "render_report", "ProfileSession", "load_ipython_extension"):
        assert name in api, name
    for page in ("getting-started", "how-it-works", "figures", "tasks/host", "tasks/http", "tasks/attach",
                 "tasks/leaks", "tasks/ci", "tasks/notebooks", "tasks/locust", "tasks/pyroscope"):
        assert (out / f"{page}.html").is_file(), page
