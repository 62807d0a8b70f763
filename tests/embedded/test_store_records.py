"""store/source_records and store/schema_records answer frozen records with the JSON columns decoded."""

from __future__ import annotations

import dataclasses
import sqlite3

import pytest

from warehouse_mcp.embedded.store import RowNotFound, Store, record, schema_records, source_records
from warehouse_mcp.embedded.store.vault import Vault

from .sync_support import add_schema, add_source


def test_a_source_comes_back_decoded_without_its_secret_half(store: Store, vault: Vault) -> None:
    source_id = add_source(
        store, vault, "Postgres", {"host": "db.example", "port": 5432, "password": "hunter2"}
    )
    source = source_records.get(store, 1, source_id)
    assert source.job_inputs["host"] == "db.example"
    assert "password" not in source.job_inputs
    assert source.connection_metadata == {"engine": "duckdb"}
    assert source.webhook is None and source.deleted is False
    assert "hunter2" not in repr(source)
    with pytest.raises(dataclasses.FrozenInstanceError):
        source.prefix = "changed"  # type: ignore[misc]
    assert source_records.source_config(store, vault, source_id)["password"] == "hunter2"


def test_a_schema_comes_back_decoded(store: Store, vault: Vault) -> None:
    source_id = add_source(store, vault, "Postgres", {"host": "db.example"})
    schema_id = add_schema(
        store,
        source_id,
        "orders",
        sync_type="incremental",
        primary_key_columns=["id"],
        enabled_columns=["id", "total"],
    )
    schema = schema_records.get(store, 1, schema_id)
    assert (schema.primary_key_columns, schema.enabled_columns) == (["id"], ["id", "total"])
    assert schema.available_columns == [] and schema.table_columns is None
    assert schema.should_sync is True and schema.sync_frequency_interval == 6 * 3600
    assert [s.id for s in schema_records.of_source(store, source_id)] == [schema_id]
    assert schema_records.of_sources(store, [source_id]) == {source_id: [schema]}


def test_a_missing_or_deleted_row_is_not_found(store: Store, vault: Vault) -> None:
    source_id = add_source(store, vault, "Postgres", {"host": "db.example"})
    with store.transaction() as db:
        source_records.soft_delete(db, source_id)
    assert source_records.find(store, 1, source_id) is None
    with pytest.raises(RowNotFound):
        schema_records.get(store, 1, "no-such-schema")


@dataclasses.dataclass(frozen=True)
class _Row:
    name: str
    enabled: bool
    tags: list[str]
    meta: dict[str, int] | None


def test_a_row_becomes_a_record_by_its_field_names() -> None:
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    db.execute("CREATE TABLE t (name TEXT, enabled INTEGER, tags TEXT, meta TEXT, extra TEXT)")
    db.execute("INSERT INTO t VALUES ('a', 1, '[\"x\"]', NULL, 'ignored'), ('b', 0, NULL, '{\"n\": 2}', '')")
    json_columns = {"tags": "[]", "meta": "null"}
    first, second = (record(_Row, row, json_columns) for row in db.execute("SELECT * FROM t ORDER BY name"))
    assert first == _Row("a", True, ["x"], None)
    assert second == _Row("b", False, [], {"n": 2}), "NULL JSON reads as the column's default"
    assert (
        second.tags
        is not record(_Row, db.execute("SELECT * FROM t WHERE name='b'").fetchone(), json_columns).tags
    )
