"""mcp 1.x low-level ``Server`` with decorators, as hand-written servers use it; the sync tool runs
through ``anyio.to_thread.run_sync`` (a worker thread)."""

import anyio
import anyio.to_thread
import common
import mcp.server.stdio
import mcp.types as types
from common import instrument_in_code, parse_args
from mcp.server.lowlevel import Server

args = parse_args()
server = Server("mcp1-lowlevel")
SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}, "text": {"type": "string"}}}


@server.list_tools()
async def list_tools() -> list[types.Tool]:
    return [types.Tool(name=fn.__name__, description=fn.__doc__ or "", inputSchema=SCHEMA) for fn in common.TOOLS]


@server.call_tool()
async def call_tool(name: str, arguments: dict) -> list[types.TextContent]:
    fn = getattr(common, name)
    if name in ("cpu_sync", "where"):
        result = await anyio.to_thread.run_sync(lambda: fn(**arguments))
    else:
        result = await fn(**arguments)
    return [types.TextContent(type="text", text=str(result))]


@server.list_resources()
async def list_resources() -> list[types.Resource]:
    return [types.Resource(uri="test://config", name="config")]


@server.read_resource()
async def read_resource(uri) -> str:
    return common.config()


@server.list_prompts()
async def list_prompts() -> list[types.Prompt]:
    return [types.Prompt(name="greet")]


@server.get_prompt()
async def get_prompt(name: str, arguments: dict | None) -> types.GetPromptResult:
    text = common.greet(**(arguments or {}))
    return types.GetPromptResult(messages=[types.PromptMessage(role="user", content=types.TextContent(type="text", text=text))])


async def main() -> None:
    async with mcp.server.stdio.stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if args.instrument:
    instrument_in_code(server, args.instrument)
anyio.run(main)
