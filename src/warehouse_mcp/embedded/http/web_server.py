"""The loopback web server: the embedded app on a real socket, for browsers (the connect page) and API clients.

uvicorn runs in a daemon thread with its own event loop, so it works the same under a stdio MCP
server (whose loop belongs to the SDK) and in plain synchronous code. We bind the socket ourselves
before uvicorn starts, so `base_url` carries the real port even when port 0 ("any free port") was asked.

The access log is off: connect-page URLs carry one-time tokens, and those must not land in logs.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time

import uvicorn
from starlette.types import ASGIApp

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 10.0
STOP_TIMEOUT_SECONDS = 10.0


class WebServerError(RuntimeError):
    pass


class LoopbackServer:
    """Serve `app` on `host:port` (port 0 = a free port) until `stop()`.

    `lifespan` is off by default: the app's owner (EmbeddedBackend) starts and closes its services
    itself, and the same app is also reached in-process through httpx.ASGITransport.
    """

    def __init__(
        self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0, *, lifespan: str = "off"
    ) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._lifespan = lifespan
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """`http://host:port` with the real port; only valid after `start()`."""
        if self.port is None:
            raise WebServerError("The web server is not running: call start() first.")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> LoopbackServer:
        """Bind, start serving in the background, and return once the socket accepts connections."""
        with self._lock:
            if self.running:
                return self
            sock = self._bind()
            self.port = sock.getsockname()[1]
            config = uvicorn.Config(
                self.app,
                log_config=None,  # leave the host process's logging alone; records propagate to it
                log_level="warning",
                access_log=False,
                lifespan=self._lifespan,  # type: ignore[arg-type]
                server_header=False,
                timeout_graceful_shutdown=5,
            )
            server = uvicorn.Server(config)
            self._server = server
            self._failure = None
            thread = threading.Thread(
                target=self._serve, args=(server, sock), name=f"warehouse-mcp-web-{self.port}", daemon=True
            )
            self._thread = thread
            thread.start()
            if not self._wait_started(server, thread):
                sock.close()
                server.should_exit = True
                reason = f": {self._failure}" if self._failure else ""
                self.port = None
                raise WebServerError(f"The web server did not start on {self.host}{reason}")
            logger.info("web server listening on %s", self.base_url)
            return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end (in-flight requests get a short grace period)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            if server is None or thread is None:
                return
            server.should_exit = True
            thread.join(STOP_TIMEOUT_SECONDS)
            if thread.is_alive():
                logger.warning("web server did not stop in %ss; forcing it", STOP_TIMEOUT_SECONDS)
                server.force_exit = True
                thread.join(STOP_TIMEOUT_SECONDS)
            self.port = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise WebServerError(
                f"Cannot listen on {self.host}:{self.requested_port} ({exc.strerror or exc}). "
                "Pick another port, or 0 for any free one."
            ) from exc
        return sock

    def _serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # reported by start(); a thread has no one else to tell
            self._failure = exc
            logger.exception("web server stopped with an error")
        finally:
            sock.close()

    @staticmethod
    def _wait_started(server: uvicorn.Server, thread: threading.Thread) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if server.started:
                return True
            if not thread.is_alive():
                return False
            time.sleep(0.005)
        return server.started
