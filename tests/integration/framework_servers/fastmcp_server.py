"""Standalone ``fastmcp`` server; the same file runs on fastmcp 2.x (on mcp 1.x, sync tools inline
on the event loop) and 4.x (on mcp 2.x, sync tools on worker threads)."""

from common import TOOLS, config, greet, instrument_in_code, parse_args
from fastmcp import FastMCP

args = parse_args()
server = FastMCP("fastmcp-test")
for fn in TOOLS:
    server.tool(fn)
server.resource("test://config")(config)
server.prompt(greet)
if args.instrument:
    instrument_in_code(server, args.instrument)
server.run("stdio", show_banner=False)
