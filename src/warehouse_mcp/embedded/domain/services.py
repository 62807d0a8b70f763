"""What the domain needs from the running backend: its store, vault, sync service and public addresses.

`EmbeddedBackend` provides it; the domain names only this protocol, never the backend (a layer above).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from warehouse_mcp.embedded.store import Store
    from warehouse_mcp.embedded.store.vault import Vault
    from warehouse_mcp.embedded.sync.service import SyncService


class Services(Protocol):
    @property
    def store(self) -> Store: ...

    @property
    def vault(self) -> Vault: ...

    @property
    def sync(self) -> SyncService: ...

    @property
    def public_url(self) -> str | None: ...

    def connect_base_url(self) -> str: ...
