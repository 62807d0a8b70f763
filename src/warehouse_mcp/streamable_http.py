"""The MCP server over streamable HTTP, optionally behind a bearer token."""

from __future__ import annotations

import hmac
from typing import Any

import anyio
from starlette.types import ASGIApp, Receive, Scope, Send

from .server import build_server
from .settings import Settings


class BearerTokenGate:
    """Refuses HTTP requests that do not carry `Authorization: Bearer <token>`."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"Missing or wrong bearer token."})
                return
        await self.app(scope, receive, send)


def http_app(
    settings: Settings, *, host: str = "127.0.0.1", token: str | None = None, **options: Any
) -> tuple[Any, Any]:
    """(ASGI app, server): the app serves MCP at /mcp; keep the server's runtime open while serving."""
    server = build_server(settings)
    app: Any = server.streamable_http_app(host=host, **options)
    if token:
        app = BearerTokenGate(app, token)
    return app, server


def serve_http(settings: Settings, *, host: str, port: int, token: str | None) -> int:
    import uvicorn

    app, server = http_app(settings, host=host, token=token)

    async def run() -> None:
        # One runtime for the app's life: HTTP sessions come and go, the backend stays up.
        async with server.runtime.session():
            config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
            await uvicorn.Server(config).serve()

    anyio.run(run)
    return 0
