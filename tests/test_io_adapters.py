"""Adapters on the real samples in ../shared/data/real and on malformed copies of them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from market_surveillance.io.adapters import asset_name, open_source, read_source
from market_surveillance.schema import TRADES as TRADES_SPEC
from market_surveillance.schema import InputError, SchemaError
from market_surveillance.testing import orders, trades

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
TNB = REAL / "binance_pumps" / "TNB_2020-03-21_16.00.csv"
LOBSTER = REAL / "lobster" / "AAPL_2012-06-21_34200000_37800000_message_50.csv"

real = pytest.mark.skipif(not REAL.exists(), reason=f"real data samples absent ({REAL} not found)")


def _balanced(counts: dict[str, int]) -> bool:
    return counts["rows_in"] == counts["accepted"] + counts["quarantined"] + counts.get(
        "skipped", 0
    ) + counts.get("duplicates", 0)


def _head(path: Path, n: int) -> list[str]:
    with path.open(encoding="utf-8") as f:
        return [next(f) for _ in range(n)]


# ---------------------------------------------------------------------------------------------
# real samples
# ---------------------------------------------------------------------------------------------


@real
def test_io_ccxt_real_pump_file_all_rows_accepted():
    src = open_source(TNB, "ccxt")
    c = src.counts["trades"]
    assert c["rows_in"] == 13_680 and c["accepted"] == 13_680 and c["quarantined"] == 0
    tr = src.tables["trades"]
    assert tr.select("asset").distinct().to_pyarrow()["asset"].to_pylist() == ["TNB-BTC"]
    assert tr.select("venue").distinct().to_pyarrow()["venue"].to_pylist() == ["binance"]
    first = tr.order_by(tr.ts).limit(1).to_pyarrow().to_pylist()[0]
    assert first["ts"] == dt.datetime(2020, 3, 9, 16, 0, 2, 761000, tzinfo=dt.UTC)
    assert (
        first["price"] == pytest.approx(1.9e-07) and first["qty"] == 6604.0 and first["aggressor"] == "sell"
    )
    assert first["ts_us"] == 1_583_769_602_761_000
    assert not src.profile.has_trade_accounts


@real
def test_io_lobster_real_sample_bom_and_counts():
    src = open_source(LOBSTER, "lobster", date="2012-06-21")
    c = src.counts["messages"]
    assert c["rows_in"] == 91_997 and _balanced(c) and c["quarantined"] == 0
    assert c["skipped_trading_halt"] == 0
    # 4067 visible + 2201 hidden executions are trades
    assert src.counts["trades"]["rows_out"] == 6_268
    o = src.tables["orders"]
    o = o.filter(~o.event_id.contains(":pre:"))  # orders from before the file get a `new` at its start
    first = o.order_by(o.ts_us).limit(1).to_pyarrow().to_pylist()[0]
    # first message (after the BOM): 34200.00424 s after midnight New York = 13:30:00.00424 UTC
    assert first["ts"] == dt.datetime(2012, 6, 21, 13, 30, 0, 4240, tzinfo=dt.UTC)
    assert first["event"] == "new" and first["side"] == "buy" and first["price"] == pytest.approx(585.33)
    assert first["account_id"] is None and first["asset"] == "AAPL" and first["venue"] == "NASDAQ"
    assert not src.profile.has_order_accounts and not src.profile.has_trade_accounts


@real
def test_io_lobster_detect_reports_account_rules_skipped(tmp_path):
    from market_surveillance.pipeline import detect_source

    res = detect_source(LOBSTER, fmt="lobster", date="2012-06-21")
    runs = {r.name: r for r in res.runs}
    for name in ("spoofing", "layering", "message_rate", "cancel_to_fill"):
        if name in runs:
            assert runs[name].status == "skipped" and "account ids" in runs[name].reason
    assert runs["pump_and_dump"].status == "ran"
    assert res.input_counts["messages"]["rows_in"] == 91_997


# ---------------------------------------------------------------------------------------------
# malformed copies: each bad-row kind, rejected with file/row/column or quarantined with a reason
# ---------------------------------------------------------------------------------------------

CCXT_BAD = {
    "price": ("TNB/BTC,1583769700000,x,buy,nan,10.0,0.1", "price", "NaN, infinite or non-positive"),
    "inf": ("TNB/BTC,1583769700000,x,buy,inf,10.0,0.1", "price", "NaN, infinite or non-positive"),
    "amount": ("TNB/BTC,1583769700000,x,buy,2e-07,-5,0.1", "amount", "NaN, infinite or non-positive"),
    "timestamp": ("TNB/BTC,notatime,x,buy,2e-07,5,0.1", "timestamp", "not parseable"),
    "side": ("TNB/BTC,1583769700000,x,hold,2e-07,5,0.1", "side", "unknown value"),
    "1970": ("TNB/BTC,1583769,x,buy,2e-07,5,0.1", "timestamp", "timestamp in 1970"),
    "symbol": (",1583769700000,x,buy,2e-07,5,0.1", "symbol", "missing value"),
}


@real
@pytest.mark.parametrize("kind", sorted(CCXT_BAD))
def test_io_ccxt_malformed_row_rejected_or_quarantined(tmp_path, kind):
    line, column, reason = CCXT_BAD[kind]
    lines = _head(TNB, 21)
    lines.insert(11, line + "\n")  # data row 11 (header excluded)
    bad = tmp_path / "bad.csv"
    bad.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(SchemaError) as exc:
        read_source(bad, "ccxt")
    msg = str(exc.value)
    assert str(bad) in msg and repr(column) in msg and "rows 11" in msg and reason in msg
    q = tmp_path / "q"
    tables, counts = read_source(bad, "ccxt", quarantine_dir=q)
    c = counts["trades"]
    assert (c["rows_in"], c["accepted"], c["quarantined"], c["duplicates"]) == (21, 20, 1, 0)
    assert tables["trades"].num_rows == 20
    qt = pq.read_table(q / "trades.parquet").to_pylist()
    assert len(qt) == 1 and qt[0]["source_row"] == 11 and reason in qt[0]["reason"]
    assert qt[0]["source_file"] == str(bad)


def _lobster_copy(tmp_path: Path, extra: list[tuple[int, str]]) -> Path:
    raw = LOBSTER.read_bytes().decode("utf-8").splitlines(keepends=True)[:40]
    for pos, line in extra:
        # "{t}" is the time of the message before: an inserted row never breaks time order by accident
        raw.insert(pos, line.replace("{t}", raw[pos - 1].split(",")[0]) + "\r\n")
    p = tmp_path / "AAPL_2012-06-21_34200000_37800000_message_50.csv"
    p.write_bytes("".join(raw).encode("utf-8"))
    return p


LOBSTER_BAD = {
    "type": ("{t},9,16113575,18,5853300,1", "type", "unknown event type"),
    "time": ("abc,1,99,18,5853300,1", "time", "timestamp not parseable"),
    "price": ("{t},1,99,18,-5,1", "price", "NaN or non-positive"),
    "size": ("{t},1,99,nan,5853300,1", "size", "NaN or non-positive"),
    "direction": ("{t},1,99,18,5853300,0", "direction", "unknown value"),
    "order": ("34100.0,1,99,18,5853300,1", "time", "out-of-order"),
    # a delete of an order that is only submitted later in the file
    "unknown_order": ("{t},3,88,18,5853300,1", "order_id", "fill/cancel of an unknown order"),
}


@real
@pytest.mark.parametrize("kind", sorted(LOBSTER_BAD))
def test_io_lobster_malformed_row_rejected_or_quarantined(tmp_path, kind):
    line, column, reason = LOBSTER_BAD[kind]
    extra = [(30, line)]
    if kind == "unknown_order":
        extra.append((38, "{t},1,88,18,5853300,1"))
    path = _lobster_copy(tmp_path, extra)
    n = 40 + len(extra)
    with pytest.raises(SchemaError) as exc:
        read_source(path, "lobster", date="2012-06-21")
    msg = str(exc.value)
    assert str(path) in msg and repr(column) in msg and "rows 31" in msg and reason in msg
    q = tmp_path / "q"
    _, counts = read_source(path, "lobster", date="2012-06-21", quarantine_dir=q)
    c = counts["messages"]
    assert c["rows_in"] == n and c["quarantined"] == 1 and _balanced(c)
    qt = pq.read_table(q / "messages.parquet").to_pylist()
    assert [r["source_row"] for r in qt] == [31] and reason in qt[0]["reason"]


@real
def test_io_lobster_halt_skipped_and_counted(tmp_path):
    path = _lobster_copy(tmp_path, [(30, "{t},7,0,0,-1,-1")])
    _, counts = read_source(path, "lobster", date="2012-06-21")
    c = counts["messages"]
    assert c["skipped_trading_halt"] == 1 and _balanced(c) and c["quarantined"] == 0


def test_io_lobster_without_date_clear_error(tmp_path):
    p = tmp_path / "X_message_1.csv"
    p.write_text("34200.1,1,1,10,1000000,1\n")
    with pytest.raises(ValueError, match="--date"):
        read_source(p, "lobster")


def test_io_lobster_execution_maps_fill_and_trade(tmp_path):
    p = tmp_path / "XYZ_2020-01-02_message_1.csv"
    p.write_text(
        "\ufeff34200.0,1,7,100,1000000,-1\r\n34201.5,4,7,40,1000000,-1\r\n"
        "34202.0,5,0,10,1001000,1\r\n34203.0,3,7,60,1000000,-1\r\n",
        encoding="utf-8",
    )
    tables, counts = read_source(p, "lobster", date="2020-01-02")
    o = tables["orders"].to_pylist()
    assert [r["event"] for r in o] == ["new", "fill", "cancel"] and {r["side"] for r in o} == {"sell"}
    tr = tables["trades"].to_pylist()
    # a resting sell executed = a buyer-initiated trade; the hidden execution of a buy = seller-initiated
    assert [(r["aggressor"], r["sell_order_id"], r["buy_order_id"]) for r in tr] == [
        ("buy", "7", None),
        ("sell", None, None),
    ]
    assert tr[0]["price"] == pytest.approx(100.0) and tr[0]["qty"] == 40.0 and tr[0]["asset"] == "XYZ"
    assert counts["messages"] == {
        "rows_in": 4,
        "accepted": 4,
        "quarantined": 0,
        "skipped": 0,
        "skipped_trading_halt": 0,
        "orders_before_file": 0,
        "messages_of_orders_before_file": 0,
    }


# ---------------------------------------------------------------------------------------------
# tardis, ccxt JSON, canonical with quarantine, CLI
# ---------------------------------------------------------------------------------------------

TARDIS_HEAD = "exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"


def test_io_tardis_trades_and_duplicate_id_quarantined(tmp_path):
    p = tmp_path / "tardis.csv"
    p.write_text(
        TARDIS_HEAD
        + "binance,BTCUSDT,1600000000000000,1600000000001000,1,buy,10000.5,0.1\n"
        + "binance,BTCUSDT,1600000001000000,1600000001001000,2,sell,10000.0,0.2\n"
        + "binance,BTCUSDT,1600000002000000,1600000002001000,2,sell,10000.0,0.2\n"
    )
    with pytest.raises(SchemaError, match=r"column 'id': duplicate id .* rows 3"):
        read_source(p, "tardis")
    tables, counts = read_source(p, "tardis", quarantine_dir=tmp_path / "q")
    c = counts["trades"]
    assert (c["rows_in"], c["accepted"], c["quarantined"], c["duplicates"]) == (3, 2, 1, 0)
    rows = tables["trades"].to_pylist()
    assert rows[0]["ts"] == dt.datetime.fromtimestamp(1_600_000_000, dt.UTC)
    assert rows[0]["venue"] == "binance" and rows[0]["asset"] == "BTC-USDT"
    assert rows[0]["trade_id"] == "binance:BTC-USDT:1"


def test_io_ccxt_json_folder(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    rows = [
        {
            "symbol": "ETH/BTC",
            "timestamp": 1600000000000 + i,
            "datetime": "x",
            "side": "buy",
            "price": 0.03,
            "amount": 1.0,
            "id": f"e{i}",
        }
        for i in range(3)
    ]
    (d / "a.json").write_text(json.dumps(rows))
    (d / "b.csv").write_text(
        "symbol,timestamp,datetime,side,price,amount\nLTC/BTC,1600000000000,x,sell,0.004,2\n"
    )
    tables, counts = read_source(d, "ccxt", venue="kraken")
    assert counts["trades"]["accepted"] == 4 and _balanced(counts["trades"])
    t = tables["trades"].to_pylist()
    assert {r["asset"] for r in t} == {"ETH-BTC", "LTC-BTC"} and {r["venue"] for r in t} == {"kraken"}


def test_io_canonical_quarantine_unknown_order_and_duplicates(tmp_path):
    d = tmp_path / "canon"
    d.mkdir()
    pq.write_table(trades([{"ts": 0}, {"ts": 1, "price": -1.0}]), d / "trades.parquet")
    od = orders(
        [
            {"ts": 0, "order_id": "o1"},
            {"ts": 1, "order_id": "o1", "event": "cancel"},
            {"ts": 2, "order_id": "ghost", "event": "fill"},
            {"ts": 3, "order_id": "o2", "event_id": "E000000"},
        ]
    )
    pq.write_table(od, d / "orders.parquet")
    with pytest.raises(SchemaError) as exc:
        read_source(d, "canonical")
    assert "without an earlier `new`" in str(exc.value) and "duplicate id" in str(exc.value)
    src = open_source(d, "canonical", quarantine_dir=tmp_path / "q")
    assert src.counts["trades"] == {
        "rows_in": 2,
        "accepted": 1,
        "quarantined": 1,
        "duplicates": 0,
        "skipped": 0,
    }
    assert src.counts["orders"] == {
        "rows_in": 4,
        "accepted": 2,
        "quarantined": 2,
        "duplicates": 0,
        "skipped": 0,
    }
    reasons = pq.read_table(tmp_path / "q" / "orders.parquet")["reason"].to_pylist()
    assert any("without an earlier `new`" in r for r in reasons) and any("duplicate id" in r for r in reasons)


def test_io_asset_name_normalised():
    assert asset_name("TNB/BTC") == "TNB-BTC" and asset_name("btc_usdt") == "BTC-USDT"
    assert asset_name("DLTBTC", split_concatenated=True) == "DLT-BTC"
    assert asset_name("BTCUSDT", split_concatenated=True) == "BTC-USDT"
    assert asset_name("XBTUSD", split_concatenated=True) == "BTC-USD"
    assert asset_name("BTC/USDT:USDT") == "BTC-USDT:USDT"
    assert asset_name("AAPL") == "AAPL"


# ---------------------------------------------------------------------------------------------
# issue 17: real-file hygiene
# ---------------------------------------------------------------------------------------------

CCXT_HEAD = "symbol,timestamp,datetime,side,price,amount,btc_volume\n"


def test_io_tardis_and_ccxt_same_market_same_asset_and_venue(tmp_path):
    # Tardis writes exchange-native DLTBTC where ccxt writes DLT/BTC: one canonical name, one venue
    tardis = tmp_path / "binance_trades_2021-05-16_DLTBTC.csv"
    tardis.write_text(TARDIS_HEAD + "Binance,DLTBTC,1621184400000000,1621184400001000,7,buy,0.0000023,100\n")
    ccxt = tmp_path / "DLT.csv"
    ccxt.write_text(CCXT_HEAD + "DLT/BTC,1621184400000,x,buy,2.3e-06,100,0.00023\n")
    t, _ = read_source(tardis, "tardis")
    c, _ = read_source(ccxt, "ccxt")
    assert t["trades"]["asset"].to_pylist() == c["trades"]["asset"].to_pylist() == ["DLT-BTC"]
    assert t["trades"]["venue"].to_pylist() == c["trades"]["venue"].to_pylist() == ["binance"]


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        # incremental_book_L2 and book_snapshot_* are read into the book table (tests/test_io_tardis_book.py)
        ("exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount", "quotes"),
        ("exchange,symbol,timestamp,local_timestamp,funding_rate,open_interest", "derivative_ticker"),
    ],
)
def test_io_tardis_unsupported_file_type_named(tmp_path, header, kind):
    p = tmp_path / "x.csv"
    p.write_text(header + "\n" + ",".join(["1"] * len(header.split(","))) + "\n")
    with pytest.raises(InputError, match=f"a Tardis {kind} file; supported Tardis data types: trades, "):
        read_source(p, "tardis")


def test_io_tardis_exact_duplicate_rows_removed_and_counted(tmp_path):
    p = tmp_path / "tardis.csv"
    row = "binance,BTCUSDT,1600000001000000,1600000001001000,2,sell,10000.0,0.2\n"
    p.write_text(
        TARDIS_HEAD + "binance,BTCUSDT,1600000000000000,1600000000001000,1,buy,10000.5,0.1\n" + row * 3
    )
    tables, counts = read_source(p, "tardis")
    c = counts["trades"]
    assert (c["rows_in"], c["accepted"], c["duplicates"], c["quarantined"]) == (4, 2, 2, 0) and _balanced(c)
    assert tables["trades"].num_rows == 2


def test_io_ccxt_overlapping_downloads_deduplicated_same_ms_fills_kept(tmp_path):
    # same-millisecond fills of equal size are real trades and stay; the overlap of two downloads goes
    d = tmp_path / "dl"
    d.mkdir()
    a = ["TNB/BTC,1583769602761,x,sell,1.9e-07,6604.0,0.1\n"] * 2 + [
        "TNB/BTC,1583769649727,x,buy,2e-07,10,0.1\n"
    ]
    b = [*a[1:], "TNB/BTC,1583769700000,x,buy,2e-07,11,0.1\n"]
    (d / "part1.csv").write_text(CCXT_HEAD + "".join(a))
    (d / "part2.csv").write_text(CCXT_HEAD + "".join(b))
    tables, counts = read_source(d, "ccxt")
    c = counts["trades"]
    # part2 repeats one of the two equal fills at ...761 (its first of that ms) and the ...727 trade
    assert (c["rows_in"], c["duplicates"], c["accepted"]) == (6, 2, 4) and _balanced(c)
    assert tables["trades"]["qty"].to_pylist() == [6604.0, 6604.0, 10.0, 11.0]


def test_io_ccxt_reverse_order_file_sorted_and_said(tmp_path):
    lines = [f"TNB/BTC,{1583769602761 + 1000 * i},x,buy,2e-07,{i + 1},0.1\n" for i in range(5)]
    p = tmp_path / "rev.csv"
    p.write_text(CCXT_HEAD + "".join(reversed(lines)))
    tables, counts = read_source(p, "ccxt")
    c = counts["trades"]
    assert c["accepted"] == 5 and c["quarantined"] == 0 and c["out_of_order"] == 4
    assert tables["trades"]["qty"].to_pylist() == [1.0, 2.0, 3.0, 4.0, 5.0]


@real
def test_io_ccxt_truncated_last_line_quarantined_not_traceback(tmp_path):
    p = tmp_path / "cut.csv"
    p.write_text("".join(_head(TNB, 21)) + "TNB/BTC,1583769700000,2020-03-09T1")
    with pytest.raises(SchemaError, match=r"truncated last line \(3 of 7 fields.* rows 21"):
        read_source(p, "ccxt")
    _, counts = read_source(p, "ccxt", quarantine_dir=tmp_path / "q")
    assert (counts["trades"]["accepted"], counts["trades"]["quarantined"]) == (20, 1)
    assert "truncated" in pq.read_table(tmp_path / "q" / "trades.parquet")["reason"][0].as_py()


def test_io_canonical_csv_exact_duplicates_removed_alerts_unchanged(tmp_path):
    from market_surveillance.pipeline import detect_source

    t = trades([{"ts": i, "buyer_id": "a", "seller_id": "b", "qty": 1.0 + i} for i in range(30)])
    clean, dirty = tmp_path / "clean", tmp_path / "dirty"
    clean.mkdir()
    dirty.mkdir()
    pq.write_table(t, clean / "trades.parquet")
    pq.write_table(pa.concat_tables([t, t.slice(3, 10)]), dirty / "trades.parquet")
    a = detect_source(clean)
    b = detect_source(dirty)
    assert b.input_counts["trades"]["duplicates"] == 10 and b.input_counts["trades"]["accepted"] == 30
    assert sorted(a.alerts["alert_id"].to_pylist()) == sorted(b.alerts["alert_id"].to_pylist())


@real
def test_io_cli_import_writes_canonical_folder(tmp_path):
    from market_surveillance.cli import app

    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["import", "ccxt", str(TNB), "--out", str(out)])
    assert res.exit_code == 0, res.output
    t = pq.read_table(out / "trades.parquet")
    assert t.num_rows == 13_680 and "accepted=13,680" in res.output


def test_io_cli_import_bad_row_exit_2(tmp_path):
    from market_surveillance.cli import app

    p = tmp_path / "bad.csv"
    p.write_text("symbol,timestamp,datetime,side,price,amount\nA/B,1600000000000,x,buy,-1,2\n")
    res = CliRunner().invoke(app, ["import", "ccxt", str(p), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "price" in res.output


def test_io_detect_ignores_labels_unknown_typology_and_broken_lists(tmp_path):
    from market_surveillance.pipeline import detect_source

    pq.write_table(trades([{"ts": i} for i in range(5)]), tmp_path / "trades.parquet")
    (tmp_path / "labels.csv").write_text(
        "scenario_id,typology,asset,venue,accounts,start_ts,end_ts\ns1,insider_dealing,X,,a;b,nope,nope\n"
    )
    res = detect_source(tmp_path)  # labels are evaluate's business: neither needed nor validated here
    assert "labels" not in res.input_counts and res.input_counts["trades"]["accepted"] == 5


def test_io_cli_detect_prints_counts_and_fails_over_quarantine_limit(tmp_path):
    from market_surveillance.cli import app

    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(
        trades([{"ts": i, "price": -1.0 if i < 3 else 100.0} for i in range(10)]), d / "trades.parquet"
    )
    res = CliRunner().invoke(
        app,
        [
            "detect",
            "--data",
            str(d),
            "--out",
            str(tmp_path / "a.parquet"),
            "--quarantine",
            str(tmp_path / "q"),
        ],
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "3 of 10 rows quarantined (30.0 %)" in res.output and "1 % limit" in res.output
    # the input table is printed first: rows in / accepted / quarantined
    assert "rows in" in res.output and "│ trades │ 10" in res.output
    assert not (tmp_path / "a.parquet").exists()


def test_io_cli_detect_header_only_is_error_unless_allowed(tmp_path):
    from market_surveillance.cli import app

    d = tmp_path / "d"
    d.mkdir()
    (d / "trades.csv").write_text(",".join(c.name for c in TRADES_SPEC.columns) + "\n")
    out = str(tmp_path / "a.parquet")
    res = CliRunner().invoke(app, ["detect", "--data", str(d), "--out", out])
    assert res.exit_code == 2 and "empty input" in res.output
    res = CliRunner().invoke(app, ["detect", "--data", str(d), "--out", out, "--allow-empty"])
    assert res.exit_code == 0, res.output


def test_io_cli_detect_trade_dated_1970_rejected_not_alerted(tmp_path):
    from market_surveillance.cli import app

    d = tmp_path / "d"
    d.mkdir()
    t = trades([{"ts": i} for i in range(5)])
    ts = t["ts"].to_pylist()
    ts[2] = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    pq.write_table(t.set_column(1, "ts", pa.array(ts, t.schema.field("ts").type)), d / "trades.parquet")
    res = CliRunner().invoke(app, ["detect", "--data", str(d), "--out", str(tmp_path / "a.parquet")])
    assert res.exit_code == 2 and "'ts': timestamp in 1970" in res.output and "rows 3" in res.output


def test_io_cli_detect_corrupt_parquet_one_line(tmp_path):
    from market_surveillance.cli import app

    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(trades([{"ts": i} for i in range(5)]), d / "trades.parquet")
    raw = (d / "trades.parquet").read_bytes()
    (d / "trades.parquet").write_bytes(raw[:100] + b"\0" * 50 + raw[150:])
    res = CliRunner().invoke(app, ["detect", "--data", str(d), "--out", str(tmp_path / "a.parquet")])
    assert (res.exit_code == 2 and "Traceback" not in res.output and res.exception is None) or isinstance(
        res.exception, SystemExit
    )
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and str(d / "trades.parquet") in lines[-1]


def test_io_market_rule_alerts_carry_the_trades_venue():
    from market_surveillance.io.canonical import from_arrow
    from market_surveillance.rules.extreme_price_move import ExtremePriceMove

    def run(venues: list[str]):  # type: ignore[no-untyped-def]
        rows = [{"ts": i, "price": 100.0 + 0.01 * (i % 3), "venue": venues[i % len(venues)]} for i in range(80)]
        rows.append({"ts": 80, "price": 130.0, "venue": venues[0]})
        _, tables, _ = from_arrow({"trades": trades(rows)})
        return ExtremePriceMove().run(tables)

    one = run(["binance"])
    assert one.num_rows >= 1 and set(one["venue"].to_pylist()) == {"binance"}
    # an asset traded on two venues: the alert judges both tapes, so it names none
    two = run(["binance", "kraken"])
    assert two.num_rows >= 1 and set(two["venue"].to_pylist()) == {None}


@pytest.mark.spark
def test_io_spark_path_same_engine_duplicates_dropped_bad_rows_refused(tmp_path):
    pytest.importorskip("pyspark")
    from market_surveillance.io.canonical import open_dir_spark, spark_backend
    from market_surveillance.pipeline import open_input

    t = trades([{"ts": i, "qty": 1.0 + i} for i in range(6)])
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(pa.concat_tables([t, t.slice(0, 2)]), d / "trades.parquet")
    src = open_dir_spark(d, backend=spark_backend())
    assert src.counts["trades"]["duplicates"] == 2 and src.tables["trades"].count().execute() == 6
    price = t["price"].to_pylist()
    price[3] = float("inf")
    pq.write_table(t.set_column(4, "price", pa.array(price, pa.float64())), d / "trades.parquet")
    with pytest.raises(SchemaError, match=r"'price': NaN, infinite or non-positive value in 1 row\(s\): rows 4"):
        open_input(d, engine="spark")
