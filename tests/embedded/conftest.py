"""Fixtures shared by the embedded backend's tests: one data directory's store, vault and warehouse; a local
Stripe-protocol server the Stripe connector is pointed at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.stripe_server import FakeStripe
from warehouse_mcp.embedded.connectors.stripe import API_BASE_ENV
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


@pytest.fixture
def stripe(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeStripe]:
    with FakeStripe() as fake:
        monkeypatch.setenv(API_BASE_ENV, fake.url)
        yield fake
