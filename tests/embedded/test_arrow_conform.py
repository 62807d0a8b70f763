"""Driver Arrow columns brought to the promised types without loss (no service needed)."""

from __future__ import annotations

from decimal import Decimal

import pyarrow as pa
import pytest

from warehouse_mcp.embedded.connectors.arrow_conform import conform_array, conform_batch
from warehouse_mcp.embedded.connectors.base import SourceError


def test_a_sliced_list_of_decimal_text_keeps_each_rows_values() -> None:
    lists = pa.array([["1.10"], None, ["2.20", "nan"], [], ["3.30", None]], type=pa.list_(pa.string()))
    for offset in range(5):
        part = lists.slice(offset, 2)
        converted = conform_array(part, pa.list_(pa.decimal128(4, 2)))
        expected = [
            None if row is None else [None if v in (None, "nan") else Decimal(v) for v in row]
            for row in part.to_pylist()
        ]
        assert converted.to_pylist() == expected


def test_extension_columns_arrive_as_their_storage() -> None:
    uuids = pa.ExtensionArray.from_storage(pa.uuid(), pa.array([b"\x01" * 16], type=pa.binary(16)))
    assert conform_array(uuids, pa.binary(16)).to_pylist() == [b"\x01" * 16]


def test_a_value_that_cannot_convert_exactly_names_the_column() -> None:
    schema = pa.schema([pa.field("amount", pa.decimal128(4, 2), metadata={"warehouse_type": "DECIMAL(4,2)"})])
    batch = pa.RecordBatch.from_arrays([pa.array(["1.234"])], names=["amount"])
    with pytest.raises(
        SourceError, match=r"Column 'amount' of 's\.t' has a value that does not fit DECIMAL\(4,2\)"
    ):
        conform_batch(batch, schema, "s.t")
