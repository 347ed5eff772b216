"""Jupyter display of mcpprof's objects, with a real IPython shell: the two outputs of a profile
(iframe + table, then a PNG for untrusted notebooks), escaping, DataFrames, and the magics."""

from __future__ import annotations

import base64
import html
import struct
import zlib

import pytest

from mcpprof.model import CPU, SAMPLES, Frame, ProfileBuilder, RequestTable
from mcpprof.model import labels as L

IPython = pytest.importorskip("IPython")

EVIL = "<script>alert(1)</script>"


def small_profile():
    b = ProfileBuilder([SAMPLES, CPU], {"collector": "sample"})
    main = [Frame("<module>", "/app/server.py", 1), Frame("handle", "/app/server.py", 10)]
    b.add(main + [Frame("parse", "/app/parse.py", 3)], [30, 30_000_000], {L.METHOD: "tools/call", L.TOOL: "parse"})
    b.add(main + [Frame(EVIL, "/app/x.py", 9)], [10, 10_000_000], {L.METHOD: "tools/call", L.TOOL: EVIL})
    p = b.build()
    t = RequestTable()
    for i in range(5):
        t.record("tools/call", "parse", 2_000_000 + i, request_id=str(i))
        t.record("tools/call", EVIL, 1_000_000 + i, request_id=str(10 + i))
    p.requests = t
    return p


def read_png(data: bytes):
    """Decode an 8-bit RGB PNG written with filter 0 (what mcpprof writes): (width, height, rows)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks.setdefault(kind, b"")
        chunks[kind] += body
        pos += 12 + length
    w, h, depth, colour = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, colour) == (8, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    stride = 1 + 3 * w
    assert len(raw) == stride * h
    return w, h, [raw[i * stride + 1:(i + 1) * stride] for i in range(h)]


def test_profile_bundle_is_an_escaped_iframe_and_a_text_table():
    from mcpprof.notebook.display import profile_bundle

    bundle = profile_bundle(small_profile())
    page = bundle["text/html"]
    assert page.startswith("<iframe srcdoc=\"")
    assert EVIL not in page  # only escaped: the frame's document is an attribute value
    srcdoc = html.unescape(page.split('srcdoc="', 1)[1].split('"', 1)[0])
    assert "<!DOCTYPE html>" in srcdoc and EVIL not in srcdoc.split("<script>", 1)[0]
    assert "tools/call parse" in bundle["text/plain"]
    assert html.escape(EVIL) in page  # the table names the tool as text


def test_png_is_a_valid_flame_graph():
    from mcpprof.notebook.display import png_bundle

    data = base64.b64decode(png_bundle(small_profile())["image/png"])
    w, h, rows = read_png(data)
    assert w == 900 and h > 30
    bottom = rows[-3]  # the root box spans the width
    assert bottom[:3] != b"\xff\xff\xff" and bottom[-9:-6] != b"\xff\xff\xff"
    top = rows[1]  # above the deepest box there is background
    assert top[:3] == b"\xff\xff\xff"


def test_empty_profile_has_no_png():
    from mcpprof.notebook.png import flame_png

    assert flame_png(ProfileBuilder([SAMPLES]).build()) is None


def test_by_tool_is_a_dataframe():
    pd = pytest.importorskip("pandas")
    from mcpprof.notebook import by_tool

    frame = by_tool(small_profile())
    assert isinstance(frame, pd.DataFrame)
    assert frame.loc["tools/call parse", "calls"] == 5
    assert frame.loc[f"tools/call {EVIL}", "calls"] == 5


@pytest.fixture
def shell():
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.run_line_magic("load_ext", "mcpprof")
    yield sh


def _outputs(shell, code):
    from IPython.utils.capture import capture_output

    with capture_output() as cap:
        result = shell.run_cell(code)
    result.raise_error()
    return cap.outputs


def test_loaded_profile_displays_as_two_outputs(shell, tmp_path):
    import mcpprof

    path = tmp_path / "p.mcpprof"
    mcpprof.save(small_profile(), path)
    outputs = _outputs(shell, f"import mcpprof\nmcpprof.load({str(path)!r})")
    kinds = [sorted(o.data) for o in outputs]
    assert kinds == [["text/html", "text/plain"], ["image/png", "text/plain"]]


def test_cell_magic_profiles_the_cell(shell):
    outputs = _outputs(shell, "%%mcpprof --rate 500\nimport time\nend = time.perf_counter() + 0.3\n"
                              "while time.perf_counter() < end: pass\n")
    session = shell.user_ns["_mcpprof"]
    assert session.profile is not None and session.profile.samples
    assert any("image/png" in o.data for o in outputs)
    assert any("<iframe srcdoc=" in o.data.get("text/html", "") for o in outputs)


def test_memory_magic_keeps_the_cells_allocations(shell):
    _outputs(shell, "%%mcpprof_memory\nkept = [bytearray(8192) for _ in range(200)]\n")
    session = shell.user_ns["_mcpprof"]
    assert session.memory is not None and session.memory.total("inuse_space") >= 200 * 8192


def test_attach_magic_rejects_a_dead_pid(shell):
    from mcpprof.errors import USER_ERRORS

    with pytest.raises(USER_ERRORS):
        shell.run_line_magic("mcpprof_attach", "999999999 --seconds 0.5")


def test_bad_magic_arguments_say_so(shell):
    from mcpprof.notebook.magics import MagicUsageError

    with pytest.raises(MagicUsageError):
        shell.run_cell_magic("mcpprof", "--rate nope", "pass")


def test_png_falls_back_to_a_value_type_with_samples() -> None:
    from mcpprof.model import CPU, SAMPLES, WALL, ProfileBuilder
    from mcpprof.model.profile import Frame
    from mcpprof.notebook.png import flame_png

    b = ProfileBuilder([SAMPLES, WALL, CPU])
    b.add([Frame("fib", "server.py", 3)], [2, 20_000_000, 0])  # seen running, no CPU measured yet
    assert flame_png(b.build()) is not None
