"""LOBSTER in full: file-name date, header rows, orders from before the file, the orderbook check.

No LOBSTER orderbook file is among the shared samples, so the book check is tested on orderbook files made
here by :func:`market_surveillance.testing.lobster_orderbook_lines`, a plain per-order reconstruction that
shares no code with :mod:`market_surveillance.book`: on hand-made messages, and on the first messages of the
real AAPL sample.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from market_surveillance.io.adapters import read_source
from market_surveillance.io.lobster_book import check_book, orderbook_features
from market_surveillance.testing import lobster_orderbook_lines

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "lobster"
LOBSTER = REAL / "AAPL_2012-06-21_34200000_37800000_message_50.csv"
real = pytest.mark.skipif(not REAL.exists(), reason=f"real data samples absent ({REAL} not found)")

NAME = "XYZ_2020-01-02_34200000_57600000_message_{}.csv"
# order 9 rests from before the file: deleted at row 4 without a submission in the file
MESSAGES = [
    "34200.0,1,1,100,1000000,1",
    "34200.5,1,2,50,1001000,-1",
    "34201.0,1,3,70,999000,1",
    "34201.2,3,9,30,1002000,-1",
    "34201.5,4,2,20,1001000,-1",
    "34202.0,5,0,10,1000500,1",
    "34202.5,2,1,40,1000000,1",
    "34203.0,1,4,25,1001000,-1",
    "34203.5,3,3,70,999000,1",
]
RESTING = [(9, 30, 1002000, -1), (77, 200, 998000, 1)]  # 77: never touched, only the orderbook shows it


def _pair(
    tmp_path: Path, levels: int = 3, messages=MESSAGES, resting=RESTING, name: str = NAME
) -> tuple[Path, Path]:
    m = tmp_path / name.format(levels)
    m.write_text("\n".join(messages) + "\n")
    o = tmp_path / name.format(levels).replace("message", "orderbook")
    o.write_text("\n".join(lobster_orderbook_lines(messages, levels, resting)) + "\n")
    return m, o


def test_lobster_date_taken_from_file_name(tmp_path):
    m, _ = _pair(tmp_path)
    tables, _ = read_source(m, "lobster")
    assert tables["orders"]["ts"][0].as_py() == dt.datetime(2020, 1, 2, 14, 30, tzinfo=dt.UTC)


def test_lobster_wrong_date_one_line_error(tmp_path):
    m, _ = _pair(tmp_path)
    with pytest.raises(ValueError) as exc:
        read_source(m, "lobster", date="2020-01-03")
    msg = str(exc.value)
    assert "\n" not in msg and "2020-01-02" in msg and "2020-01-03" in msg and m.name in msg


def test_lobster_wrong_date_cli_exit_2(tmp_path):
    from market_surveillance.cli import app

    m, _ = _pair(tmp_path)
    res = CliRunner().invoke(app, ["detect", "--data", str(m), "--format", "lobster", "--date", "2021-01-01"])
    assert res.exit_code == 2 and "file name says 2020-01-02" in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"])
def test_lobster_header_row_any_line_ending_same_tables(tmp_path, eol):
    plain, _ = _pair(tmp_path)
    expected, _ = read_source(plain, "lobster")
    (tmp_path / "h").mkdir()
    h = tmp_path / "h" / plain.name
    h.write_bytes(("\ufeffTime,Type,OrderID,Size,Price,Direction" + eol + eol.join(MESSAGES) + eol).encode())
    got, counts = read_source(h, "lobster")
    assert counts["messages"]["rows_in"] == len(MESSAGES) and counts["messages"]["quarantined"] == 0
    assert got["orders"].drop(["event_id"]).equals(expected["orders"].drop(["event_id"]))
    assert got["trades"].num_rows == expected["trades"].num_rows


def test_lobster_order_from_before_file_gets_new_at_start(tmp_path):
    m, _ = _pair(tmp_path)
    tables, counts = read_source(m, "lobster")
    o = [r for r in tables["orders"].to_pylist() if r["order_id"] == "9"]
    assert [r["event"] for r in o] == ["new", "cancel"]
    assert o[0]["ts"] == tables["orders"]["ts"][0].as_py() and o[0]["qty"] == 30.0 and o[0]["side"] == "sell"
    assert o[0]["event_id"].endswith(":pre:9") and o[0]["price"] == pytest.approx(100.2)
    assert counts["messages"]["orders_before_file"] == 1
    assert counts["messages"]["messages_of_orders_before_file"] == 1
    assert counts["messages"]["skipped"] == 0


def test_lobster_book_check_constructed_zero_mismatches_and_seeds(tmp_path):
    m, o = _pair(tmp_path)
    res = check_book(m, o)
    assert (res.compared, res.mismatches, res.levels) == (len(MESSAGES), 0, 3)
    assert res.seeded_levels == 1  # order 77's level
    assert res.line() == f"book check: {len(MESSAGES)} compared, 0 mismatches"


@pytest.mark.parametrize("cell,cls", [(1, "size"), (0, "price")])
def test_lobster_book_check_finds_a_wrong_row(tmp_path, cell, cls):
    m, o = _pair(tmp_path)
    rows = o.read_text().splitlines()
    fields = rows[6].split(",")  # the book after message 7
    fields[cell] = str(int(fields[cell]) + 1)
    rows[6] = ",".join(fields)
    o.write_text("\n".join(rows) + "\n")
    res = check_book(m, o)
    assert res.mismatches == 1 and res.first_rows == [7] and res.by_class == {cls: 1}
    assert "1 mismatches" in res.line() and "first rows 7" in res.line()


def test_lobster_book_check_level_missing_in_reconstruction(tmp_path):
    # without the resting order 9 in the orderbook the check sees a level we remove that LOBSTER never had
    m, o = _pair(tmp_path, resting=[(77, 200, 998000, 1)])
    res = check_book(m, o)
    assert res.mismatches > 0 and set(res.by_class) <= {"extra", "missing", "size", "price"}


def test_lobster_book_check_row_count_disagrees_clear_error(tmp_path):
    m, o = _pair(tmp_path)
    o.write_text("\n".join(o.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(ValueError, match="8 rows but the message file has 9"):
        check_book(m, o)


def test_lobster_orderbook_features_imbalance(tmp_path):
    m, o = _pair(tmp_path)
    f = orderbook_features(m, o, n_levels=1).to_pylist()
    assert len(f) == len(MESSAGES)
    # after message 2: bid 100 @ 100.00 (and 200 @ 99.80 deeper), ask 30 @ 100.20 (order 9) and 50 @ 100.10
    assert f[1]["best_bid"] == pytest.approx(100.0) and f[1]["best_ask"] == pytest.approx(100.1)
    assert f[1]["imbalance"] == pytest.approx((100 - 50) / 150)
    assert f[1]["ts"] == dt.datetime(2020, 1, 2, 14, 30, 0, 500000, tzinfo=dt.UTC)


@real
def test_lobster_book_check_on_real_messages_zero_mismatches(tmp_path):
    """First 3000 messages of the real AAPL sample, orderbook from the independent reconstruction.

    Orders from before the file rest with the size the file later removes from them (what the adapter
    assumes too), plus two never-touched orders that only the orderbook's first row shows.
    """
    lines = LOBSTER.read_text(encoding="utf-8-sig").splitlines()[:3000]
    seen: set[int] = set()
    pre: dict[int, list[int]] = {}
    for line in lines:
        _, typ, oid, size, price, d = (int(float(x)) for x in line.split(","))
        if typ == 1:
            seen.add(oid)
        elif typ in (2, 3, 4) and oid not in seen:
            pre.setdefault(oid, [0, price, d])[0] += size
    resting = [(k, s, p, d) for k, (s, p, d) in pre.items()] + [(1, 300, 5850000, 1), (2, 500, 5870000, -1)]
    m, o = _pair(tmp_path, 10, lines, resting, "AAPL_2012-06-21_34200000_37800000_message_{}.csv")
    res = check_book(m, o, date="2012-06-21")
    assert res.compared == 3000 and res.mismatches == 0 and res.seeded_levels == 2


def test_lobster_cli_orderbook_prints_book_check(tmp_path):
    from market_surveillance.cli import app

    m, o = _pair(tmp_path)
    out = tmp_path / "out" / "alerts.parquet"
    res = CliRunner().invoke(
        app, ["detect", "--data", str(m), "--format", "lobster", "--orderbook", str(o), "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert f"book check: {len(MESSAGES)} compared, 0 mismatches" in res.output
    assert pq.read_table(out.parent / "lobster_book.parquet").num_rows == len(MESSAGES)


@real
def test_lobster_real_sample_runs_at_least_8_rules():
    from market_surveillance.pipeline import detect_source

    res = detect_source(LOBSTER, fmt="lobster")
    ran = [r.name for r in res.runs if r.status == "ran"]
    assert len(ran) >= 8, ran
    assert {"spoofing_orders", "layering_orders", "message_burst", "order_to_trade"} <= set(ran)


@st.composite
def _message_flows(draw) -> tuple[list[str], list[tuple[int, int, int, int]]]:
    """Consistent LOBSTER message sequences on a small price grid (never crossed), with orders resting from
    before them."""
    def quote(d: int) -> int:
        # bids at or below 100.00, asks above it: a LOBSTER book is never crossed (a crossing order executes)
        return 1_000_000 - draw(st.integers(0, 5)) * 100 if d == 1 else 1_000_100 + draw(st.integers(0, 5)) * 100

    sides = [draw(st.sampled_from([1, -1])) for _ in range(draw(st.integers(0, 3)))]
    resting = [(900 + k, draw(st.integers(1, 50)), quote(d), d) for k, d in enumerate(sides)]
    live = {oid: [size, price, d] for oid, size, price, d in resting}
    msgs, t, next_id = [], 34_200.0, 1
    for _ in range(draw(st.integers(1, 25))):
        t += draw(st.sampled_from([0.0, 0.001, 0.5]))  # same-time messages included
        kind = draw(st.sampled_from(["new", "new", "partial", "delete", "exec", "hidden"]))
        if kind in ("partial", "delete", "exec") and live:
            oid = draw(st.sampled_from(sorted(live)))
            size, price, d = live[oid]
            if kind == "delete":
                msgs.append(f"{t:.3f},3,{oid},{size},{price},{d}")
                del live[oid]
                continue
            cut = draw(st.integers(1, size))
            msgs.append(f"{t:.3f},{2 if kind == 'partial' else 4},{oid},{cut},{price},{d}")
            live[oid][0] -= cut
            if live[oid][0] == 0:
                del live[oid]
        elif kind == "hidden":
            msgs.append(f"{t:.3f},5,0,{draw(st.integers(1, 9))},1000000,1")
        else:
            size, d = draw(st.integers(1, 50)), draw(st.sampled_from([1, -1]))
            price = quote(d)
            msgs.append(f"{t:.3f},1,{next_id},{size},{price},{d}")
            live[next_id] = [size, price, d]
            next_id += 1
    return msgs, resting


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flow=_message_flows(), levels=st.integers(1, 4))
def test_lobster_book_check_matches_independent_reconstruction(tmp_path_factory, flow, levels):
    """book.py on the adapter's events equals a dict-of-orders reconstruction after every message.

    Orders resting from before the flow are either removed by it (the adapter sizes them from the file)
    or untouched (seeded from row 1): both reconstructions must agree whenever those orders are fully
    removed or never touched, which the generator guarantees only for the untouched ones, so resting
    orders the flow touches are given exactly the size the flow removes.
    """
    msgs, resting = flow
    removed: dict[int, int] = {}
    for line in msgs:
        _, typ, oid, size, _, _ = (int(float(x)) for x in line.split(","))
        if typ in (2, 3, 4) and oid >= 900:
            removed[oid] = removed.get(oid, 0) + size
    # an order the flow touches holds what it removes (the adapter's documented assumption); a delete
    # removes the rest, so its recorded size is what was left
    resting = [(o, removed.get(o, s), p, d) if o in removed else (o, s, p, d) for o, s, p, d in resting]
    m, o = _pair(tmp_path_factory.mktemp("flow"), levels, msgs, resting)
    res = check_book(m, o)
    assert res.compared == len(msgs) and res.mismatches == 0, res.line()
