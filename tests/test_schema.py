"""Schema validation names the file, the column and the rows of every problem."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from market_surveillance.schema import (
    InputError,
    Limits,
    SchemaError,
    encode_csv,
    read_table,
    screen_file,
    validate_dir,
    validate_file,
)
from market_surveillance.testing import at, make_table, trades


def _write_csv(tmp_path, name: str, table: pa.Table):
    path = tmp_path / f"{name}.csv"
    pacsv.write_csv(table, path)
    return path


def _messages(path, table: str) -> str:
    return "\n".join(p.message() for p in validate_file(path, table))


def _good_trades(n: int = 5) -> pa.Table:
    return trades([{"ts": i, "buyer_id": "a", "seller_id": "b"} for i in range(n)]).drop_columns(
        ["scenario_id"]
    )


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


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), 0.0, -5.0])
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
    assert (
        f"'{column}'" in msg
        and "NaN, infinite or non-positive" in msg
        and "rows 2, 5" in msg
        and str(path) in msg
    )


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
    # the first row of an id is kept; the repeat with other values is the bad row
    assert "duplicate id" in msg and "'trade_id'" in msg and "rows 4" in msg


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


# ---------------------------------------------------------------------------------------------
# issue 17: one engine, counts that agree, plausibility, lifecycle, exact duplicates, list encoding
# ---------------------------------------------------------------------------------------------


def _big_trades(n: int, bad: dict[int, float | None]) -> pa.Table:
    price = np.full(n, 100.0)
    t = pa.table(
        {
            "trade_id": [f"T{i}" for i in range(n)],
            "ts": pa.array(np.arange(n) * 1_000_000 + 1_709_251_200_000_000, pa.timestamp("us", tz="UTC")),
            "venue": ["EXA"] * n,
            "asset": ["BTC-USD"] * n,
            "price": price,
            "qty": np.ones(n),
            "buyer_id": ["a"] * n,
            "seller_id": ["b"] * n,
            "aggressor": ["buy"] * n,
            "buy_order_id": pa.nulls(n, pa.string()),
            "sell_order_id": pa.nulls(n, pa.string()),
        }
    )
    values = t["price"].to_pylist()
    for i, v in bad.items():
        values[i] = v
    return t.set_column(4, "price", pa.array(values, pa.float64()))


def test_screen_real_nan_inf_null_counted_and_named_alike(tmp_path):
    # IEEE NaN, +inf, -inf and a null spread over many row groups: the count queries, the row-naming
    # query and the quarantine tagging must find the same rows (+inf used to pass)
    bad = {5: float("nan"), 70_001: float("inf"), 99_998: float("-inf"), 40_000: None, 12: 0.0}
    path = tmp_path / "trades.parquet"
    pq.write_table(_big_trades(100_000, bad), path, row_group_size=7_000)
    con = duckdb.connect()
    s = screen_file(con, path, "trades")
    by_reason = {p.reason: p for p in s.problems}
    assert by_reason["missing value"].rows == (40_001,) and by_reason["missing value"].count == 1
    bad_num = by_reason["NaN, infinite or non-positive value"]
    assert bad_num.count == 4 and bad_num.rows == (6, 13, 70_002, 99_999)
    q = screen_file(con, path, "trades", quarantine=True)
    assert q.quarantined == 5 and q.accepted == 100_000 - 5 and not q.problems
    assert sorted(q.bad_rows["source_row"].to_pylist()) == [6, 13, 40_001, 70_002, 99_999]


def test_validate_dir_order_lifecycle_checked_like_quarantine(tmp_path):
    # fill without any `new`, cancel before its `new`: the default path used to skip this check
    o = make_table(
        "orders",
        [
            {"ts": 0, "order_id": "o1"},
            {"ts": 1, "order_id": "o1", "event": "fill"},
            {"ts": 2, "order_id": "ghost", "event": "fill"},
            {"ts": 3, "order_id": "late", "event": "cancel"},
            {"ts": 4, "order_id": "late"},
        ],
    )
    pq.write_table(_good_trades(), tmp_path / "trades.parquet")
    pq.write_table(o, tmp_path / "orders.parquet")
    with pytest.raises(SchemaError) as info:
        validate_dir(tmp_path)
    (p,) = info.value.problems
    assert p.column == "order_id" and "without an earlier `new`" in p.reason and p.rows == (3, 4)


def test_validate_file_ts_outside_plausible_range_named(tmp_path):
    t = _good_trades().to_pandas()
    t["ts"] = t["ts"].astype(object)
    t.loc[1, "ts"] = "1970-01-01T00:00:01Z"
    t.loc[3, "ts"] = "2100-01-01T00:00:00Z"
    t.to_csv(tmp_path / "trades.csv", index=False)
    msg = _messages(tmp_path / "trades.csv", "trades")
    assert "timestamp in 1970" in msg and "rows 2" in msg
    assert "outside the plausible range" in msg and "rows 2, 4" in msg
    # configurable: a wider range accepts the far future row
    wide = validate_file(
        tmp_path / "trades.csv", "trades", limits=Limits(ts_max=dt.datetime(2200, 1, 1, tzinfo=dt.UTC))
    )
    assert {p.rows for p in wide} == {(2,)}  # the 1970 row only (both the 1970 and the range check)


def test_validate_file_epoch_millis_hinted(tmp_path):
    t = _good_trades().to_pandas()
    t["ts"] = (t["ts"].astype("int64") // 1000).astype(str)  # epoch ms as text
    t.to_csv(tmp_path / "trades.csv", index=False)
    msg = _messages(tmp_path / "trades.csv", "trades")
    assert "epoch number" in msg and "milliseconds" in msg and "in 5 row(s)" in msg
    # the same in Parquet (an int64 column)
    pt = _good_trades()
    pt = pt.set_column(1, "ts", pa.array([1_709_251_200_000 + i for i in range(5)], pa.int64()))
    pq.write_table(pt, tmp_path / "trades.parquet")
    assert "milliseconds" in _messages(tmp_path / "trades.parquet", "trades")


def test_screen_exact_duplicate_rows_removed_and_counted(tmp_path):
    t = _good_trades().to_pandas()
    dup = pd.concat([t, t.iloc[[1, 1, 3]]], ignore_index=True)
    dup.to_csv(tmp_path / "trades.csv", index=False)
    s = screen_file(duckdb.connect(), tmp_path / "trades.csv", "trades")
    assert not s.problems and s.duplicates == 3 and s.rows_in == 8 and s.accepted == 5


def test_screen_truncated_last_line_named_then_quarantined(tmp_path):
    path = tmp_path / "trades.csv"
    _good_trades().to_pandas().to_csv(path, index=False)
    text = path.read_text()
    path.write_text(text + text.splitlines()[1][:25])  # a sixth line cut short, no newline
    with pytest.raises(SchemaError, match=r"truncated last line .* rows 6"):
        validate_dir(tmp_path)
    s = screen_file(duckdb.connect(), path, "trades", quarantine=True)
    assert s.quarantined == 1 and s.accepted == 5 and "truncated" in s.bad_rows["reason"][0].as_py()


def test_screen_corrupt_parquet_one_line_input_error(tmp_path):
    (tmp_path / "trades.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(InputError) as info:
        validate_dir(tmp_path)
    assert str(tmp_path / "trades.parquet") in str(info.value) and "\n" not in str(info.value)


def test_labels_csv_lists_round_trip_including_empty(tmp_path):
    labels = make_table(
        "labels",
        [
            {
                "scenario_id": "s1",
                "typology": "spoofing",
                "asset": "BTC-USD",
                "accounts": ["a;1", "b,2"],
                "start_ts": at(0),
                "end_ts": at(5),
            },
            {
                "scenario_id": "s2",
                "typology": "spoofing",
                "asset": "BTC-USD",
                "accounts": [],
                "start_ts": at(0),
                "end_ts": at(5),
            },
        ],
    )
    pacsv.write_csv(encode_csv(labels), tmp_path / "labels.csv")
    back = read_table(tmp_path, "labels")
    assert back["accounts"].to_pylist() == [["a;1", "b,2"], []]
    assert back.equals(labels)


def test_labels_csv_bad_list_named(tmp_path):
    (tmp_path / "labels.csv").write_text(
        "scenario_id,typology,asset,venue,accounts,start_ts,end_ts\n"
        "s1,spoofing,BTC-USD,,a;b,2024-03-01T00:00:00Z,2024-03-01T00:01:00Z\n"
    )
    with pytest.raises(SchemaError, match=r"'accounts': value not parseable as JSON array"):
        read_table(tmp_path, "labels")


def test_finalize_alerts_nan_score_refused_not_stored_as_zero():
    from market_surveillance.alerts import finalize_alerts
    from market_surveillance.rules.registry import all_rules

    rule = all_rules()[0]
    raw = pa.table(
        {
            "asset": ["BTC-USD"],
            "venue": ["EXA"],
            "accounts": pa.array([[]], pa.list_(pa.string())),
            "window_start": [at(0)],
            "window_end": [at(5)],
            "score": [float("nan")],
            "value": [1.0],
            "threshold": [1.0],
            "evidence_trade_ids": pa.array([[]], pa.list_(pa.string())),
            "evidence_order_ids": pa.array([[]], pa.list_(pa.string())),
            "explanation": ["x"],
        }
    )
    with pytest.raises(ValueError, match="score is not a finite number"):
        finalize_alerts(rule, raw)


def test_finalize_alerts_merges_an_episode_reached_twice_whatever_the_row_order():
    """Two candidate rows with one id (same rule, entity and start) are one alert spanning both, not
    whichever row the engine happened to return first (the flaky MS002 golden line came from that)."""
    from market_surveillance.alerts import finalize_alerts
    from market_surveillance.rules.registry import all_rules

    rule = all_rules()[0]
    raw = pa.table(
        {
            "asset": ["BTC-USD", "BTC-USD"],
            "venue": ["EXA", "EXA"],
            "accounts": pa.array([["A1", "A2"], ["A2", "A1"]], pa.list_(pa.string())),
            "window_start": [at(0), at(0)],
            "window_end": [at(5), at(50)],
            "detected_at": [at(3), at(40)],
            "score": [2.0, 3.0],
            "value": [20.0, 25.0],
            "threshold": [6.0, 6.0],
            "evidence_trade_ids": pa.array([["T1", "T2"], ["T2", "T3"]], pa.list_(pa.string())),
            "evidence_order_ids": pa.array([[], []], pa.list_(pa.string())),
            "explanation": [None, None],
        }
    )
    one = finalize_alerts(rule, raw).to_pylist()
    other = finalize_alerts(rule, raw.take([1, 0])).to_pylist()
    assert one == other and len(one) == 1
    (a,) = one
    assert (a["window_end"], a["detected_at"]) == (at(50), at(3))
    assert (a["value"], a["score"], a["evidence_trade_ids"]) == (25.0, 3.0, ["T1", "T2", "T3"])
