"""Binance public dumps (--format binance): layouts, headers, market names, duplicates, the NULS pump."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from market_surveillance.io.adapters import read_source
from market_surveillance.io.binance import detect_layout, market_of_symbol, read_binance
from market_surveillance.schema import SchemaError

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "binance_public"
real = pytest.mark.skipif(not REAL.exists(), reason=f"real data samples absent ({REAL} not found)")

TRADES = [
    "100,0.00002933,1.00000000,0.00002933,1580342491740,False,True",
    "101,0.00002919,67.00000000,0.00195573,1580342656138,True,True",
    "102,0.00002920,5.00000000,0.00014600,1580342700000,False,True",
]
AGG = [
    "7,0.00002933,1.00000000,100,100,1580342491740,False,True",
    "8,0.00002919,67.00000000,101,102,1580342656138,True,True",
]


def _write(path: Path, lines: list[str], header: str | None = None, zip_it: bool = False) -> Path:
    text = "\n".join(([header] if header else []) + lines) + "\n"
    if not zip_it:
        path.write_text(text)
        return path
    zpath = path.with_suffix(".zip")
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr(path.name, text)
    return zpath


@pytest.mark.parametrize(
    "symbol,market",
    [("NULSBTC", "NULS-BTC"), ("BTCUSDT", "BTC-USDT"), ("ETHBTC", "ETH-BTC"), ("BNBETH", "BNB-ETH"),
     ("1INCHBUSD", "1INCH-BUSD"), ("BTCFDUSD", "BTC-FDUSD"), ("ETHEUR", "ETH-EUR")],
)  # fmt: skip
def test_binance_market_of_symbol_known_quotes_split(symbol, market):
    assert market_of_symbol(symbol) == market


def test_binance_market_of_symbol_unknown_quote_clear_error():
    with pytest.raises(ValueError, match="cannot tell base from quote"):
        market_of_symbol("FOOQQQ")


def test_binance_trades_csv_headerless_maps_columns(tmp_path):
    got = read_binance(_write(tmp_path / "NULSBTC-trades-2020-01-30.csv", TRADES))
    rows = got.trades.to_pylist()
    assert [r["trade_id"] for r in rows] == [
        "binance:NULS-BTC:100",
        "binance:NULS-BTC:101",
        "binance:NULS-BTC:102",
    ]
    assert rows[0]["ts"] == dt.datetime(2020, 1, 30, 0, 1, 31, 740000, tzinfo=dt.UTC)
    assert rows[0]["venue"] == "binance" and rows[0]["asset"] == "NULS-BTC"
    # isBuyerMaker True: the resting order was the buy, so the taker sold
    assert [r["aggressor"] for r in rows] == ["buy", "sell", "buy"]
    assert rows[1]["price"] == pytest.approx(0.00002919) and rows[1]["qty"] == 67.0
    assert (
        got.counts["rows_in"] == 3 and got.counts["accepted"] == 3 and got.counts["duplicates_removed"] == 0
    )


def test_binance_header_and_zip_give_same_trades(tmp_path):
    plain = read_binance(_write(tmp_path / "NULSBTC-trades-2020-01-30.csv", TRADES)).trades
    (tmp_path / "z").mkdir()
    header = "id,price,qty,quote_qty,time,is_buyer_maker,is_best_match"
    zipped = read_binance(_write(tmp_path / "z" / "NULSBTC-trades-2020-01-30.csv", TRADES, header, True))
    assert zipped.trades.equals(plain)
    crlf = tmp_path / "NULSBTC-trades-2020-01-31.csv"
    crlf.write_bytes(("\r\n".join([header, *TRADES]) + "\r\n").encode())
    assert read_binance(crlf).trades.equals(plain)


def test_binance_layouts_told_apart_by_columns(tmp_path):
    assert detect_layout(_write(tmp_path / "a.csv", AGG), "a")[0] == "aggTrades"
    assert detect_layout(_write(tmp_path / "t.csv", TRADES), "t")[0] == "trades"
    futures_agg = [",".join(line.split(",")[:7]) for line in AGG]
    assert detect_layout(_write(tmp_path / "fa.csv", futures_agg), "fa")[0] == "aggTrades"
    futures_trades = [",".join(line.split(",")[:6]) for line in TRADES]
    assert detect_layout(_write(tmp_path / "ft.csv", futures_trades), "ft")[0] == "trades"
    hdr = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
    assert detect_layout(_write(tmp_path / "h.csv", futures_agg, hdr), "h")[0] == "aggTrades"


def test_binance_agg_trades_ids_from_trade_range(tmp_path):
    got = read_binance(_write(tmp_path / "NULSBTC-aggTrades-2020-01-30.csv", AGG, zip_it=True))
    rows = got.trades.to_pylist()
    assert [r["trade_id"] for r in rows] == ["binance:NULS-BTC:agg:100-100", "binance:NULS-BTC:agg:101-102"]
    assert [r["aggressor"] for r in rows] == ["buy", "sell"]


def test_binance_name_and_columns_disagree_clear_error(tmp_path):
    with pytest.raises(ValueError, match="name says aggTrades but the columns are the trades layout"):
        read_binance(_write(tmp_path / "NULSBTC-aggTrades-2020-01-30.csv", TRADES))


def test_binance_overlapping_files_duplicates_removed_and_counted(tmp_path):
    _write(tmp_path / "NULSBTC-trades-2020-01-30.csv", TRADES[:2])
    _write(tmp_path / "NULSBTC-trades-2020-01.csv", TRADES, zip_it=True)  # the monthly file repeats them
    got = read_binance(tmp_path)
    assert got.trades.num_rows == 3
    assert got.counts == {
        "rows_in": 5, "accepted": 3, "quarantined": 0, "skipped": 2, "duplicates_removed": 2,
        "files": 2, "skipped_files": 0,
    }  # fmt: skip


def test_binance_both_granularities_keep_trades_skip_agg(tmp_path):
    _write(tmp_path / "NULSBTC-trades-2020-01-30.csv", TRADES)
    _write(tmp_path / "NULSBTC-aggTrades-2020-01-30.csv", AGG)
    got = read_binance(tmp_path)
    assert got.trades.num_rows == 3 and got.counts["skipped_files"] == 1


def test_binance_conflicting_trade_id_rejected_or_quarantined(tmp_path):
    _write(tmp_path / "NULSBTC-trades-2020-01-30.csv", TRADES)
    _write(tmp_path / "NULSBTC-trades-2020-01.csv", [TRADES[0].replace("1.00000000", "2.00000000")])
    with pytest.raises(SchemaError, match="one trade id with different values"):
        read_binance(tmp_path)
    tables, counts = read_source(tmp_path, "binance", quarantine_dir=tmp_path / "q")
    assert counts["trades"]["quarantined"] == 2 and tables["trades"].num_rows == 2
    q = pq.read_table(tmp_path / "q" / "trades.parquet").to_pylist()
    assert {r["source_row"] for r in q} == {1}


def test_binance_bad_price_names_file_row_column(tmp_path):
    bad = [*TRADES[:1], "101,abc,67.0,0.1,1580342656138,True,True", TRADES[2]]
    path = _write(tmp_path / "NULSBTC-trades-2020-01-30.csv", bad)
    with pytest.raises(SchemaError) as exc:
        read_binance(path)
    msg = str(exc.value)
    assert str(path) in msg and "'price'" in msg and "rows 2" in msg


def test_binance_microsecond_timestamps(tmp_path):
    us = [line.replace("1580342491740", "1580342491740123") for line in TRADES[:1]]
    got = read_binance(_write(tmp_path / "NULSBTC-trades-2025-01-30.csv", us))
    assert got.trades["ts"][0].as_py() == dt.datetime(2020, 1, 30, 0, 1, 31, 740123, tzinfo=dt.UTC)


@real
def test_binance_real_samples_detect_finds_nuls_pump(tmp_path):
    from market_surveillance.cli import app

    out = tmp_path / "alerts.parquet"
    res = CliRunner().invoke(app, ["detect", "--data", str(REAL), "--format", "binance", "--out", str(out)])
    assert res.exit_code == 0, res.output
    alerts = pq.read_table(out).to_pylist()
    pump = [a for a in alerts if a["rule_name"] == "pump_and_dump"]
    assert len(pump) == 1 and pump[0]["asset"] == "NULS-BTC"  # venue: issue 17 (market rules leave it empty)
    announced = dt.datetime(2020, 1, 30, 17, 0, tzinfo=dt.UTC)
    assert abs(pump[0]["window_start"] - announced) <= dt.timedelta(minutes=5)


@real
def test_binance_real_agg_trades_import(tmp_path):
    from market_surveillance.cli import app

    src = REAL / "NULSBTC-aggTrades-2020-01-30.zip"
    res = CliRunner().invoke(app, ["import", "binance", str(src), "--out", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output
    tr = pq.read_table(tmp_path / "c" / "trades.parquet")
    assert tr.num_rows == 2708 and set(tr["asset"].to_pylist()) == {"NULS-BTC"}
