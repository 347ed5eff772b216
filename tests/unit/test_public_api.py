"""The public API: importing mcpprof does nothing heavy, and its names keep working together."""

from __future__ import annotations

import subprocess
import sys

import mcpprof
from mcpprof.model.folded import profile_from_folded


def test_export_function_survives_importing_the_export_package() -> None:
    p = profile_from_folded("main;tool 3\n")
    assert mcpprof.export(p, "folded") == b"main;tool 3\n"
    import importlib

    importlib.import_module("mcpprof.export.registry")  # binds the package to mcpprof.export

    assert mcpprof.export(p, "folded") == b"main;tool 3\n"


def test_import_is_light_and_silent() -> None:
    code = ("import sys, mcpprof; heavy = [m for m in ('rich', 'click', 'mcp', 'IPython', 'pandas') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert out.stderr == ""


def test_cli_errors_are_plain_text(capsys) -> None:
    from mcpprof.cli import console

    console.error("install it with  pip install 'mcpprof[example]'")
    assert "mcpprof[example]" in capsys.readouterr().err


def test_diff_of_two_profiles_draws_as_a_differential_flame_graph() -> None:
    base = profile_from_folded("main;grew 1\nmain;shrank 3\n")
    new = profile_from_folded("main;grew 3\nmain;shrank 1\n")
    d = mcpprof.diff(base, new)
    lines = mcpprof.export(d, "diff-folded").decode().splitlines()
    assert [line.split(";", 1)[1] for line in lines] == ["main;grew 1 3", "main;shrank 3 1"]
    assert b"grew" in mcpprof.export(d, "html")
