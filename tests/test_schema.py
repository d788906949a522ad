"""Schema validation names the file, the column and the rows of every problem."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from market_surveillance.schema import SchemaError, validate_dir, validate_file
from market_surveillance.testing import make_table, trades


def _write_csv(tmp_path, name: str, table: pa.Table):
    path = tmp_path / f"{name}.csv"
    pacsv.write_csv(table, path)
    return path


def _messages(path, table: str) -> str:
    return "\n".join(p.message() for p in validate_file(path, table))


def _good_trades(n: int = 5) -> pa.Table:
    return trades([{"ts": i, "buyer_id": "a", "seller_id": "b"} for i in range(n)]).drop_columns(["scenario_id"])


def test_validate_file_valid_table_has_no_problems(tmp_path):
    assert validate_file(_write_csv(tmp_path, "trades", _good_trades()), "trades") == []


def test_validate_file_missing_column_named(tmp_path):
    path = _write_csv(tmp_path, "trades", _good_trades().drop_columns(["aggressor"]))
    msg = _messages(path, "trades")
    assert str(path) in msg and "'aggressor'" in msg and "missing column" in msg


def test_validate_file_wrong_type_names_rows(tmp_path):
    t = _good_trades().to_pandas()
    t["price"] = t["price"].astype(object)
    t.loc[2, "price"] = "abc"
    path = tmp_path / "trades.csv"
    t.to_csv(path, index=False)
    msg = _messages(path, "trades")
    assert "'price'" in msg and "not parseable as double" in msg and "rows 3" in msg


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -5.0])
@pytest.mark.parametrize("column", ["price", "qty"])
def test_validate_file_nan_or_non_positive_named(tmp_path, column, bad):
    t = _good_trades()
    values = t[column].to_pylist()
    values[1] = values[4] = bad
    idx = t.schema.get_field_index(column)
    t = t.set_column(idx, column, pa.array(values, pa.float64()))  # NaN stays NaN (not null) in Arrow
    path = tmp_path / "trades.parquet"
    pq.write_table(t, path)
    msg = _messages(path, "trades")
    assert f"'{column}'" in msg and "NaN or non-positive" in msg and "rows 2, 5" in msg and str(path) in msg


def test_validate_file_unknown_side_and_event_named(tmp_path):
    o = make_table(
        "orders",
        [
            {"ts": 0, "order_id": "o1", "event": "new", "side": "buy"},
            {"ts": 1, "order_id": "o1", "event": "amend", "side": "buy"},
            {"ts": 2, "order_id": "o2", "event": "new", "side": "short"},
        ],
    )
    path = _write_csv(tmp_path, "orders", o)
    msg = _messages(path, "orders")
    assert "'event'" in msg and "unknown value" in msg and "rows 2" in msg
    assert "'side'" in msg and "rows 3" in msg


def test_validate_file_unknown_aggressor_named(tmp_path):
    t = _good_trades().to_pandas()
    t.loc[0, "aggressor"] = "both"
    path = tmp_path / "trades.csv"
    t.to_csv(path, index=False)
    assert "'aggressor'" in _messages(path, "trades")


def test_validate_file_duplicate_ids_named(tmp_path):
    t = _good_trades().to_pandas()
    t.loc[3, "trade_id"] = t.loc[0, "trade_id"]
    path = tmp_path / "trades.csv"
    t.to_csv(path, index=False)
    msg = _messages(path, "trades")
    assert "duplicate id" in msg and "'trade_id'" in msg and "rows 1, 4" in msg


def test_validate_file_unparseable_timestamp_named(tmp_path):
    t = _good_trades().to_pandas()
    t["ts"] = t["ts"].astype(str)
    t.loc[2, "ts"] = "yesterday"
    path = tmp_path / "trades.csv"
    t.to_csv(path, index=False)
    msg = _messages(path, "trades")
    assert "'ts'" in msg and "timestamptz" in msg and "rows 3" in msg


def test_validate_dir_raises_schema_error_listing_all_problems(tmp_path):
    t = _good_trades().to_pandas()
    t.loc[0, "qty"] = -1
    t.loc[1, "price"] = 0
    t.to_csv(tmp_path / "trades.csv", index=False)
    with pytest.raises(SchemaError) as info:
        validate_dir(tmp_path)
    text = str(info.value)
    assert "'qty'" in text and "'price'" in text
    assert len(info.value.problems) == 2


def test_validate_dir_trades_required_other_tables_optional(tmp_path):
    with pytest.raises(SchemaError, match=r"trades.parquet: table file missing"):
        validate_dir(tmp_path)
    _good_trades().to_pandas().to_csv(tmp_path / "trades.csv", index=False)
    validate_dir(tmp_path)  # orders, accounts, ... absent: rules needing them are skipped, not failed
