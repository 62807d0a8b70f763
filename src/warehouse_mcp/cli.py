"""`warehouse-mcp`: run the MCP server (stdio or HTTP), serve the embedded API on its own, reset a data dir."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__
from .settings import TOOL_MODES, TOOLSETS, Settings, SettingsError, is_loopback, parse_toolsets


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="warehouse-mcp",
        description="MCP server for data-warehouse imports (PostHog External Data API). "
        "Every flag has an environment variable; see README.md.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        default="run",
        choices=("run", "serve-api", "reset", "version"),
        help="run: the MCP server (default); serve-api: the embedded API alone; reset: empty a data dir",
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio", help="MCP transport (run)")
    parser.add_argument("--host", default="127.0.0.1", help="bind address for http / serve-api")
    parser.add_argument("--port", type=int, default=8765, help="port for http / serve-api")
    parser.add_argument("--http-token", help="bearer token required on HTTP (WAREHOUSE_MCP_HTTP_TOKEN)")
    parser.add_argument("--backend", choices=("embedded", "posthog"), help="WAREHOUSE_MCP_BACKEND")
    parser.add_argument("--home", type=Path, help="embedded data directory (WAREHOUSE_MCP_HOME)")
    parser.add_argument(
        "--ephemeral", action="store_true", default=None, help="fresh data dir, removed on exit"
    )
    parser.add_argument("--project-id", help="pin the project (POSTHOG_PROJECT_ID)")
    parser.add_argument("--toolsets", help=f"comma-separated subset of {','.join(TOOLSETS)}")
    parser.add_argument("--read-only", action="store_true", default=None, help="only read-only tools")
    parser.add_argument(
        "--tool-mode",
        choices=TOOL_MODES,
        help="all: one tool per operation (default); discovery: search/schema/call (WAREHOUSE_MCP_TOOL_MODE)",
    )
    parser.add_argument("--log-level", default=os.environ.get("WAREHOUSE_MCP_LOG_LEVEL", "WARNING"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Logs go to stderr only: on stdio, stdout carries nothing but the protocol.
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "version":
        print(__version__)
        return 0
    try:
        settings = Settings.from_env(
            backend=args.backend,
            home=args.home,
            ephemeral=args.ephemeral,
            project_id=args.project_id,
            toolsets=parse_toolsets(args.toolsets) if args.toolsets else None,
            read_only=args.read_only,
            tool_mode=args.tool_mode,
        )
    except SettingsError as exc:
        print(f"warehouse-mcp: {exc}", file=sys.stderr)
        return 2
    if args.command == "reset":
        return _reset(settings)
    if args.command == "serve-api":
        from .serve_api import serve_api

        return serve_api(settings, host=args.host, port=args.port)
    if args.transport == "http":
        token = args.http_token or os.environ.get("WAREHOUSE_MCP_HTTP_TOKEN")
        if not is_loopback(args.host) and not token:
            print(
                f"warehouse-mcp: binding HTTP to {args.host} exposes the server beyond this machine; "
                "set WAREHOUSE_MCP_HTTP_TOKEN (or --http-token) so that clients must send it as a bearer token.",
                file=sys.stderr,
            )
            return 2
        from .streamable_http import serve_http

        return serve_http(settings, host=args.host, port=args.port, token=token)
    from .server import build_server

    build_server(settings).run()
    return 0


def _reset(settings: Settings) -> int:
    from .embedded.reset import reset_home

    home = settings.resolved_home()
    reset_home(home)
    print(f"warehouse-mcp: emptied {home}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
