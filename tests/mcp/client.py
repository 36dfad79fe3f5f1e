"""Drives an MCP server (through Gatehouse) with the official Python SDK's
client, and prints what the client got, as one JSON document on stdout.

    client.py URL TRANSPORT TOKEN STEPS

TRANSPORT is `streamable` or `sse` (the legacy HTTP+SSE transport). STEPS is
a JSON list run in one session after `initialize`, each one of
`["list_tools"]`, `["list_resources"]`, `["list_templates"]`,
`["list_prompts"]`, `["call", NAME, ARGS]`, `["read", URI]`,
`["prompt", NAME, ARGS]`. The output is `{"server": ..., "steps": [...]}`,
each step `{"ok": ...}` or `{"error": {"code": C, "message": M}}`; a
failure of the session itself is `{"fatal": "..."}`.
"""

import asyncio
import json
import sys
from datetime import timedelta

from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError

READ_TIMEOUT = timedelta(seconds=60)


async def run_steps(session: ClientSession, steps):
    out = []
    for step in steps:
        try:
            if step[0] == "list_tools":
                r = await session.list_tools()
                out.append({"ok": {"tools": [t.model_dump(mode="json", exclude_none=True) for t in r.tools]}})
            elif step[0] == "list_resources":
                r = await session.list_resources()
                out.append({"ok": {"resources": [x.model_dump(mode="json", exclude_none=True) for x in r.resources]}})
            elif step[0] == "list_templates":
                r = await session.list_resource_templates()
                out.append({"ok": {"templates": [x.model_dump(mode="json", exclude_none=True) for x in r.resourceTemplates]}})
            elif step[0] == "list_prompts":
                r = await session.list_prompts()
                out.append({"ok": {"prompts": [x.model_dump(mode="json", exclude_none=True) for x in r.prompts]}})
            elif step[0] == "call":
                r = await session.call_tool(step[1], step[2], read_timeout_seconds=READ_TIMEOUT)
                out.append({"ok": r.model_dump(mode="json", exclude_none=True)})
            elif step[0] == "read":
                r = await session.read_resource(step[1])
                out.append({"ok": r.model_dump(mode="json", exclude_none=True)})
            elif step[0] == "prompt":
                r = await session.get_prompt(step[1], step[2])
                out.append({"ok": r.model_dump(mode="json", exclude_none=True)})
            else:
                raise SystemExit(f"unknown step {step[0]!r}")
        except McpError as e:
            out.append({"error": {"code": e.error.code, "message": e.error.message, "data": e.error.data}})
    return out


async def main(url: str, transport: str, token: str, steps) -> dict:
    headers = {"Authorization": f"Bearer {token}"}
    if transport == "streamable":
        # Long HTTP timeouts: a call held for approval waits at the gateway.
        ctx = streamablehttp_client(url, headers=headers, timeout=60)
    elif transport == "sse":
        ctx = sse_client(url, headers=headers, timeout=60)
    else:
        raise SystemExit(f"unknown transport {transport!r}")
    async with ctx as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write, read_timeout_seconds=READ_TIMEOUT) as session:
            init = await session.initialize()
            result = await run_steps(session, steps)
            return {"server": init.serverInfo.name, "steps": result}


if __name__ == "__main__":
    url, transport, token, steps = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    try:
        doc = asyncio.run(main(url, transport, token, steps))
    except BaseException as e:  # noqa: BLE001 - the test wants to see any failure
        if isinstance(e, SystemExit):
            raise
        # Task groups wrap the cause; show the innermost messages.
        def flatten(err):
            if isinstance(err, BaseExceptionGroup):
                return [m for x in err.exceptions for m in flatten(x)]
            return [f"{type(err).__name__}: {err}"]
        doc = {"fatal": "; ".join(flatten(e))}
    print(json.dumps(doc))
