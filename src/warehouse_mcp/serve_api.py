"""`warehouse-mcp serve-api`: the embedded PostHog-compatible API on its own, for other MCP clients and harnesses.

Clients point at it as if it were PostHog: POSTHOG_HOST=http://127.0.0.1:PORT and
POSTHOG_PERSONAL_API_KEY=<the token in <home>/api_token>.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

from .settings import Settings

TOKEN_FILE = "api_token"


def api_token(home: Path) -> str:
    """The daemon's bearer token, made on first run and kept (mode 0600) in the data directory."""
    path = home / TOKEN_FILE
    if path.exists():
        return path.read_text().strip()
    home.mkdir(parents=True, exist_ok=True)
    token = "wmcp_" + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    return token


def serve_api(settings: Settings, *, host: str, port: int) -> int:
    import uvicorn

    from .embedded.backend import EmbeddedBackend

    home = settings.resolved_home()
    token = api_token(home)
    backend = EmbeddedBackend(
        home,
        api_token=token,
        connect_host=settings.connect_host,
        connect_port=settings.connect_port,
        public_url=settings.public_url or f"http://{host}:{port}",
        run_scheduler=settings.run_scheduler,
    )
    backend.start()
    print(
        f"warehouse-mcp: embedded API on http://{host}:{port} (data in {home}); "
        f"clients use POSTHOG_HOST=http://{host}:{port} and the token in {home / TOKEN_FILE}",
        file=sys.stderr,
    )
    try:
        uvicorn.run(backend.app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        backend.close()
    return 0
