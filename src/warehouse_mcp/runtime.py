"""What a running server holds: the API client, the embedded backend (if any), the redactor, the transcript.

Opened by the first MCP session and closed by the last, so that in-process clients, stdio and HTTP all
share one backend per server and two servers in one process share nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import httpx

from .client import ApiClient
from .secret_guard import Redactor
from .settings import Settings

if TYPE_CHECKING:
    from mcp.types import CallToolResult

    from .embedded.backend import EmbeddedBackend


EMBEDDED_BASE_URL = "http://embedded.warehouse-mcp"
# The embedded scheduler (DuckDB, the warehouse lock, crash recovery) starts at the first tool call, or this
# many seconds after the session opens: a client that only lists tools never waits for it.
SCHEDULER_START_DELAY = 2.0


class Runtime:
    def __init__(self, settings: Settings, *, clock: Any = None) -> None:
        self.settings = settings
        self.clock = clock  # the embedded scheduler's clock (tests and harnesses pass a ManualClock)
        self.redactor = Redactor()
        self._client: ApiClient | None = None
        self._backend: EmbeddedBackend | None = None
        self._home: Path | None = None
        self._users = 0
        self._starting: threading.Thread | None = None
        self._start_now = threading.Event()
        self._start_cancelled = False
        self._lock = anyio.Lock()
        self._transcript_lock = threading.Lock()

    @property
    def client(self) -> ApiClient:
        if self._client is None:
            raise RuntimeError("The server is not running (no MCP session is open).")
        self._start_now.set()  # a tool is being used: the scheduler should run now
        return self._client

    @property
    def backend(self) -> EmbeddedBackend | None:
        return self._backend

    @property
    def home(self) -> Path | None:
        """The embedded backend's data directory while it runs."""
        return self._home

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Runtime]:
        async with self._lock:
            if self._users == 0:
                await self._open()
            self._users += 1
        try:
            yield self
        finally:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    self._users -= 1
                    if self._users == 0:
                        await self._close()

    async def _open(self) -> None:
        settings = self.settings
        if settings.backend == "posthog":
            self._client = ApiClient(
                settings.posthog_host,
                api_key=settings.api_key,
                family=settings.api_family,
                timeout=settings.timeout_seconds,
                max_retries=settings.max_retries,
            )
            return
        from .embedded.backend import EmbeddedBackend

        if settings.ephemeral:
            self._home = Path(tempfile.mkdtemp(prefix="warehouse-mcp-"))
        else:
            self._home = settings.resolved_home()
        backend = EmbeddedBackend(
            self._home,
            connect_host=settings.connect_host,
            connect_port=settings.connect_port,
            public_url=settings.public_url,
            run_scheduler=settings.run_scheduler,
            clock=self.clock,
        )
        # The scheduler starts beside the session rather than before it (SCHEDULER_START_DELAY).
        self._start_now.clear()
        self._start_cancelled = False
        self._starting = threading.Thread(
            target=self._start_scheduler, args=(backend,), name="warehouse-start", daemon=True
        )
        self._starting.start()
        self._backend = backend
        self._client = ApiClient(
            EMBEDDED_BASE_URL,
            family=settings.api_family,
            transport=httpx.ASGITransport(app=backend.app),
            timeout=settings.timeout_seconds,
            max_retries=settings.max_retries,
        )

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._backend is not None:
            await anyio.to_thread.run_sync(self._stop_backend, self._backend)
            self._backend = None
        if self.settings.ephemeral and self._home is not None:
            shutil.rmtree(self._home, ignore_errors=True)
        self._home = None

    def _start_scheduler(self, backend: EmbeddedBackend) -> None:
        self._start_now.wait(SCHEDULER_START_DELAY)
        if not self._start_cancelled:
            backend.start()

    def _stop_backend(self, backend: EmbeddedBackend) -> None:
        if self._starting is not None:
            self._start_cancelled = True
            self._start_now.set()
            self._starting.join()
        backend.close()

    def form_secret_keys(self, source_type: str | None) -> frozenset[str]:
        """Field names the source's form marks secret (password inputs, `secret: true`, key files)."""
        if not source_type:
            return frozenset()
        from .embedded.connectors import forms

        return frozenset(path[-1] for path in forms.sensitive_paths(source_type))

    def record(self, tool: str, args: Any, result: CallToolResult) -> None:
        """Append the call to the transcript (JSON lines, already redacted), if one is configured."""
        path = self.settings.transcript_path
        if path is None:
            return
        arguments = self.redactor.redact(args.model_dump(mode="json", exclude_unset=True))
        entry = {
            "at": datetime.now(UTC).isoformat(),
            "tool": tool,
            "arguments": arguments,
            "is_error": bool(result.is_error),
            "result": result.structured_content
            if result.structured_content is not None
            else "".join(getattr(block, "text", "") for block in result.content),
        }
        line = json.dumps(entry, default=str)
        with self._transcript_lock, path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
