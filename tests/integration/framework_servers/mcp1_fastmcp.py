"""mcp 1.x ``mcp.server.fastmcp.FastMCP`` server (sync tools run inline on the event loop)."""

from common import TOOLS, config, greet, instrument_in_code, parse_args
from mcp.server.fastmcp import FastMCP

args = parse_args()
server = FastMCP("mcp1-fastmcp", log_level="WARNING")
for fn in TOOLS:
    server.tool()(fn)
server.resource("test://config")(config)
server.prompt()(greet)
if args.instrument:
    instrument_in_code(server, args.instrument)
server.run("stdio")
