"""The notebooks in ``notebooks/`` run top to bottom in a real Jupyter kernel (nbclient + ipykernel)
against the bundled example server; their own assert cells check the figures, and this test checks
the outputs a reader sees (flame graph iframe, PNG for untrusted notebooks, tables)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("mcp")


def execute(name: str, tmp_path: Path) -> Any:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(book, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return book


def outputs(book: Any) -> List[Dict[str, Any]]:
    return [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def rich(book: Any, mime: str) -> List[str]:
    return [o["data"][mime] for o in outputs(book) if o.get("output_type") in ("display_data", "execute_result")
            and mime in o.get("data", {})]


@pytest.fixture(autouse=True)
def _python3_kernel_is_this_interpreter(tmp_path_factory, monkeypatch):
    """Install a ``python3`` kernelspec pointing at this interpreter in a private JUPYTER_PATH."""
    from ipykernel.kernelspec import install

    prefix = tmp_path_factory.mktemp("jupyter")
    install(user=False, prefix=str(prefix), kernel_name="python3")
    monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    # the notebooks' subprocesses (`python -m mcpprof ...`) use sys.executable: this interpreter
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))


def test_explore_profile(tmp_path: Path):
    book = execute("explore_profile.ipynb", tmp_path)
    html = rich(book, "text/html")
    assert any(h.startswith("<iframe srcdoc=") for h in html)
    assert any("tools/call cpu_sync" in h for h in html)
    assert len(rich(book, "image/png")) >= 3  # the session, one tool, the loaded profile (+ the magic)
    assert (tmp_path / "explore-report.html").stat().st_size > 20_000


def test_find_a_leak(tmp_path: Path):
    book = execute("find_a_leak.ipynb", tmp_path)
    tables = rich(book, "text/html")
    assert any("<td>alloc</td>" in t and "leak" in t and "<iframe srcdoc=" in t for t in tables)  # the report
    assert len(rich(book, "image/png")) >= 2  # the report's and the growth profile's flame graphs
    assert (tmp_path / "leaks-out" / "report.html").is_file()


def test_compare_benchmarks(tmp_path: Path):
    book = execute("compare_benchmarks.ipynb", tmp_path)
    html = rich(book, "text/html")
    assert any("<td>tool-simple</td>" in t and "<iframe srcdoc=" in t for t in html)  # the bench result
    assert any("mcpprof compare (stored)" in t and "fg-diff" in t for t in html)  # verdicts + differential graph
    assert len(rich(book, "image/png")) >= 2
    assert (tmp_path / "new.json").is_file()


def test_attach_to_a_server(tmp_path: Path):
    book = execute("attach_to_a_server.ipynb", tmp_path)
    assert any(h.startswith("<iframe srcdoc=") for h in rich(book, "text/html"))
    assert len(rich(book, "image/png")) >= 2
