"""Tardis order-book files (incremental_book_L2, book_snapshot_25) → the canonical `book` table.

Fixtures in tests/fixtures/tardis are small files written by hand in the CSV layouts documented at
docs.tardis.dev (downloadable CSV data types), with the NULS/BTC prices of the shared Binance samples.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from market_surveillance.book import book_levels
from market_surveillance.io.adapters import read_source
from market_surveillance.schema import SchemaError

FIX = Path(__file__).resolve().parent / "fixtures" / "tardis"
T0 = dt.datetime(2020, 1, 30, tzinfo=dt.UTC)


def _book_at(book, seconds: float) -> dict[str, list[tuple[float, float]]]:
    lv = book_levels(book, n_levels=5, every=None, end=T0 + dt.timedelta(seconds=seconds)).to_pylist()
    last = max(r["ts"] for r in lv)
    out: dict[str, list[tuple[float, float]]] = {"buy": [], "sell": []}
    for r in lv:
        if r["ts"] == last:
            out[r["side"]].append((round(r["price"] * 1e8), r["qty"]))
    return out


def test_tardis_incremental_l2_imported_with_counts():
    tables, counts = read_source(FIX / "l2", "tardis")
    assert counts["book"] == {
        "rows_in": 13,
        "level_changes_out": 14,
        "skipped_before_first_snapshot": 1,
        "files": 1,
    }
    book = tables["book"]
    assert set(book["asset"].to_pylist()) == {"NULS-BTC"} and set(book["venue"].to_pylist()) == {"binance"}
    assert tables["trades"].num_rows == 2


def test_tardis_incremental_l2_book_states():
    book = read_source(FIX / "l2", "tardis")[0]["book"]
    # after the snapshot and the updates at 1 s, 2 s (ask 2935 removed) and 3 s (bid 2931: 5 then 8)
    assert _book_at(book, 3.5) == {"buy": [(2931, 8.0), (2930, 60.0), (2925, 40.0)], "sell": [(2940, 50.0)]}
    # the snapshot at 4 s (a reconnect) discards what it does not restate
    assert _book_at(book, 4.5) == {"buy": [(2930, 70.0)], "sell": [(2940, 55.0)]}
    # removal of a level never seen changes nothing
    assert _book_at(book, 6.0) == {"buy": [(2930, 70.0)], "sell": [(2938, 7.0), (2940, 55.0)]}


def test_tardis_book_snapshot_25_diffed_into_level_changes():
    tables, counts = read_source(FIX / "snapshot", "tardis")
    assert counts["book"]["rows_in"] == 3 and "trades" not in tables
    book = tables["book"]
    assert book.num_rows == 6  # 4 levels, then one changed size, then one ask gone
    assert _book_at(book, 0.5) == {"buy": [(2930, 80.0), (2925, 40.0)], "sell": [(2935, 100.0), (2940, 50.0)]}
    assert _book_at(book, 2.0) == {"buy": [(2930, 60.0), (2925, 40.0)], "sell": [(2940, 50.0)]}


def test_tardis_unsupported_data_type_named(tmp_path):
    p = tmp_path / "binance_derivative_ticker_2020-01-30_BTCUSDT.csv"
    p.write_text(
        "exchange,symbol,timestamp,local_timestamp,funding_rate,open_interest\nbinance,X,1,1,0.1,5\n"
    )
    with pytest.raises(
        ValueError, match="a Tardis derivative_ticker file; supported Tardis data types: trades, "
    ):
        read_source(p, "tardis")


def test_tardis_l2_bad_amount_names_file_row_column(tmp_path):
    src = (FIX / "l2" / "binance_incremental_book_L2_2020-01-30_NULSBTC.csv").read_text().splitlines()
    src[6] = src[6].rsplit(",", 1)[0] + ",-3"
    p = tmp_path / "l2.csv"
    p.write_text("\n".join(src) + "\n")
    with pytest.raises(SchemaError) as exc:
        read_source(p, "tardis")
    msg = str(exc.value)
    assert str(p) in msg and "'amount'" in msg and "rows 6" in msg


def test_tardis_book_import_and_detect_runs_level_rules(tmp_path):
    from market_surveillance.cli import app
    from market_surveillance.pipeline import detect_source

    res = CliRunner().invoke(app, ["import", "tardis", str(FIX / "l2"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    assert pq.read_table(tmp_path / "c" / "book.parquet").num_rows == 14
    runs = {r.name: r for r in detect_source(tmp_path / "c").runs}
    assert runs["message_burst"].status == "ran" and runs["level_message_burst"].status == "ran"
    assert runs["spoofing_orders"].status == "skipped"  # needs order ids


def test_tardis_book_gzipped_file_same_rows(tmp_path):
    import gzip

    src = FIX / "l2" / "binance_incremental_book_L2_2020-01-30_NULSBTC.csv"
    gz = tmp_path / (src.name + ".gz")
    gz.write_bytes(gzip.compress(src.read_bytes()))
    plain = read_source(src, "tardis")[0]["book"]
    assert read_source(gz, "tardis")[0]["book"].equals(plain)
