"""The embedded backend: one data directory, its store, vault and sync service, and the app serving them.

Constructing it is cheap (no database driver or DuckDB import: the sync service and the connectors
load on first use), so a server can build it at start-up. `start()` starts the sync scheduler,
`close()` stops everything it started. The loopback web server (connect page, webhooks) starts on
first need.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.vault import Vault

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from warehouse_mcp.embedded.http.web_server import LoopbackServer
    from warehouse_mcp.embedded.sync.scheduler import Clock
    from warehouse_mcp.embedded.sync.service import SyncService


class EmbeddedBackend:
    def __init__(
        self,
        home: Path,
        *,
        api_token: str | None = None,
        connect_host: str = "127.0.0.1",
        connect_port: int = 0,
        public_url: str | None = None,
        clock: Clock | None = None,
        run_scheduler: bool = True,
    ) -> None:
        home = Path(home)
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.home = home
        self.api_token = api_token
        self.connect_host = connect_host
        self.connect_port = connect_port
        self.public_url = public_url.rstrip("/") if public_url else None
        self.run_scheduler = run_scheduler
        self.store = Store(home)
        self.vault = Vault(home)
        self._clock = clock
        self._sync: SyncService | None = None
        self._scheduler_running = False
        self._web: LoopbackServer | None = None
        self._lock = threading.Lock()

        from warehouse_mcp.embedded.http.app import build_app

        self.app: Starlette = build_app(self)

    @property
    def sync(self) -> SyncService:
        """The sync service, built on first use (it loads DuckDB, which a bare construction should not)."""
        with self._lock:
            if self._sync is None:
                from warehouse_mcp.embedded.sync.service import SyncService

                self._sync = SyncService(self.store, self.vault, self.home, clock=self._clock)
            return self._sync

    def start(self) -> None:
        if self.run_scheduler and not self._scheduler_running:
            self.sync.start()
            self._scheduler_running = True

    def close(self) -> None:
        if self._scheduler_running:
            self.sync.stop()
            self._scheduler_running = False
        with self._lock:
            web, self._web = self._web, None
        if web is not None:
            web.stop()

    def connect_base_url(self) -> str:
        """`http://host:port` of the loopback web server (connect page, webhooks), started on first call."""
        with self._lock:
            if self._web is None:
                from warehouse_mcp.embedded.http.web_server import LoopbackServer

                self._web = LoopbackServer(self.app, self.connect_host, self.connect_port).start()
            return self._web.base_url

    def __enter__(self) -> EmbeddedBackend:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
