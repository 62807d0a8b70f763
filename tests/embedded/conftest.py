"""Fixtures shared by the embedded backend's sync tests: one data directory's store, vault and warehouse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from warehouse_mcp.embedded.store import Store
from warehouse_mcp.embedded.store.vault import Vault
from warehouse_mcp.embedded.sync.warehouse import Warehouse


@pytest.fixture
def store(home: Path) -> Store:
    return Store(home)


@pytest.fixture
def vault(home: Path) -> Vault:
    return Vault(home)


@pytest.fixture
def warehouse(home: Path) -> Iterator[Warehouse]:
    opened = Warehouse(home / "warehouse.duckdb")
    yield opened
    opened.close()
