"""The MCP server the MCP tests run behind Gatehouse, built with the official
Python SDK (FastMCP). One process serves every transport the SDK has:

- streamable HTTP at /mcp (responses as SSE streams, the SDK's default),
- streamable HTTP at /json/mcp (plain JSON responses),
- the legacy HTTP+SSE transport: GET /sse, POST /messages/?session_id=...

It binds 127.0.0.1 on a free port and prints `listening PORT` when ready.
"""

import contextlib
import socket
import sys

import uvicorn
from mcp.server.fastmcp import Context, FastMCP
from mcp.types import ToolAnnotations
from starlette.applications import Starlette


def build(name: str, **settings) -> FastMCP:
    mcp = FastMCP(name, **settings)

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def echo(text: str) -> str:
        """Returns the text it was given."""
        return text

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def lookup_customer(customer_id: str) -> str:
        """A customer's contact record."""
        return (
            f"customer {customer_id}: Ada Lovelace, email ada@example.com, "
            "card 4111 1111 1111 1111"
        )

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    async def progress_report(steps: int, ctx: Context) -> str:
        """Reports progress and log lines before its result."""
        for i in range(steps):
            await ctx.info(f"step {i} of {steps} for ops@example.com")
            await ctx.report_progress(i + 1, steps)
        return f"{steps} steps done; contact ops@example.com"

    @mcp.tool(annotations=ToolAnnotations(readOnlyHint=True))
    def big_report(size: int) -> str:
        """A result of `size` bytes."""
        return "x" * size

    @mcp.tool(annotations=ToolAnnotations(destructiveHint=True))
    def delete_records(table: str) -> str:
        """Deletes every record of a table."""
        return f"deleted all records of {table}"

    @mcp.tool(annotations=ToolAnnotations(destructiveHint=True))
    def run_shell(command: str) -> str:
        """Runs a shell command on the server."""
        return f"ran {command}"

    @mcp.tool()
    def admin_reset() -> str:
        """Resets the service to factory settings."""
        return "reset"

    @mcp.resource("config://app")
    def app_config() -> str:
        """The application's configuration."""
        return "mode=production; owner=ops@example.com"

    @mcp.resource("config://secrets")
    def app_secrets() -> str:
        """The application's keys."""
        return "api_key=k-123"

    @mcp.resource("docs://{name}")
    def doc(name: str) -> str:
        """A document by name."""
        return f"document {name}"

    @mcp.resource("docs://private/{name}")
    def private_doc(name: str) -> str:
        """A private document by name."""
        return f"private document {name}"

    @mcp.prompt()
    def greeting(name: str) -> str:
        """A greeting."""
        return f"Say hello to {name}."

    @mcp.prompt()
    def admin_briefing() -> str:
        """The operators' briefing."""
        return "Brief the operators on the incident."

    return mcp


def main() -> None:
    streaming = build("gatehouse-test")
    json_mode = build("gatehouse-test-json", json_response=True, streamable_http_path="/json/mcp")
    legacy = build("gatehouse-test-legacy")

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        async with streaming.session_manager.run(), json_mode.session_manager.run():
            yield

    routes = []
    routes += streaming.streamable_http_app().routes
    routes += json_mode.streamable_http_app().routes
    routes += legacy.sse_app().routes
    app = Starlette(routes=routes, lifespan=lifespan)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning")
    server = uvicorn.Server(config)

    async def serve():
        import asyncio

        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.02)
        print(f"listening {port}", flush=True)
        await task

    import asyncio

    asyncio.run(serve())


if __name__ == "__main__":
    sys.exit(main())
