"""Invariants of the synthetic exchange: consistent orders and trades, uncrossed book, determinism."""

from __future__ import annotations

import hashlib

import duckdb
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from market_surveillance.cli import app
from market_surveillance.enums import Segment
from market_surveillance.schema import validate_dir
from market_surveillance.simulate import generate_to_dir, simulate

SMALL = 3_000


def _con(tables: dict[str, pa.Table]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for name, t in tables.items():
        con.register(name, t)
    return con


def check_invariants(tables: dict[str, pa.Table]) -> None:
    con = _con(tables)
    # every trade has a fill event for each side's order, same ts and qty
    missing = con.execute(
        """
        SELECT count(*) FROM trades t
        WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = t.buy_order_id AND o.event = 'fill'
                          AND o.ts = t.ts AND o.side = 'buy' AND abs(o.qty - t.qty) < 1e-9)
           OR NOT EXISTS (SELECT 1 FROM orders o WHERE o.order_id = t.sell_order_id AND o.event = 'fill'
                          AND o.ts = t.ts AND o.side = 'sell' AND abs(o.qty - t.qty) < 1e-9)
        """
    ).fetchone()[0]
    assert missing == 0, f"{missing} trades without both fill events"
    # exactly one new per order; fills/cancels refer to an earlier-or-equal new of the same order and owner
    dup_new = con.execute(
        "SELECT count(*) FROM (SELECT order_id FROM orders WHERE event='new' GROUP BY 1 HAVING count(*) > 1)"
    ).fetchone()[0]
    assert dup_new == 0
    orphans = con.execute(
        """
        SELECT count(*) FROM orders e LEFT JOIN (SELECT * FROM orders WHERE event = 'new') n USING (order_id)
        WHERE e.event <> 'new' AND (n.order_id IS NULL OR n.ts > e.ts OR n.account_id <> e.account_id
              OR n.side <> e.side OR n.venue <> e.venue OR n.asset <> e.asset)
        """
    ).fetchone()[0]
    assert orphans == 0, f"{orphans} fill/cancel events without a matching earlier new"
    # filled + cancelled never exceeds the order quantity
    over = con.execute(
        """
        SELECT count(*) FROM (
            SELECT order_id, sum(qty) FILTER (WHERE event = 'new') AS q,
                   coalesce(sum(qty) FILTER (WHERE event <> 'new'), 0) AS used
            FROM orders GROUP BY 1) WHERE used > q * (1 + 1e-9)
        """
    ).fetchone()[0]
    assert over == 0
    # the book rebuilt from the events is never crossed for more than one second
    crossed = con.execute(
        """
        WITH life AS (
            SELECT n.order_id, n.venue, n.asset, n.side, n.price, n.ts AS t0,
                   coalesce(min(e.ts) FILTER (WHERE e.event = 'cancel'), max(e.ts) FILTER (WHERE e.event = 'fill'
                            AND e.cum >= n.qty - 1e-9), TIMESTAMPTZ '9999-01-01') AS t1
            FROM (SELECT * FROM orders WHERE event = 'new') n
            LEFT JOIN (SELECT *, sum(qty) FILTER (WHERE event = 'fill')
                                 OVER (PARTITION BY order_id ORDER BY ts, event_id) AS cum FROM orders) e
              ON e.order_id = n.order_id AND e.event <> 'new'
            GROUP BY ALL)
        SELECT count(*) FROM life b JOIN life a
          ON a.venue = b.venue AND a.asset = b.asset AND b.side = 'buy' AND a.side = 'sell'
         AND b.price >= a.price
         AND least(a.t1, b.t1) - greatest(a.t0, b.t0) > INTERVAL 1 SECOND
        """
    ).fetchone()[0]
    assert crossed == 0, f"{crossed} bid/ask pairs crossed for more than 1 s"


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
def test_simulate_any_seed_orders_and_trades_consistent(seed: int):
    check_invariants(simulate(seed, trades=SMALL))


def test_simulate_background_only_consistent_and_unlabelled():
    tables = simulate(5, trades=SMALL, inject=False)
    check_invariants(tables)
    assert tables["labels"].num_rows == 0
    assert tables["trades"]["scenario_id"].null_count == tables["trades"].num_rows


def test_simulate_universe_has_required_breadth():
    tables = simulate(2, trades=SMALL)
    con = _con(tables)
    assert con.execute("SELECT count(DISTINCT venue) FROM trades").fetchone()[0] >= 3
    assert con.execute("SELECT count(DISTINCT asset) FROM trades").fetchone()[0] >= 5
    segments = {r[0] for r in con.execute("SELECT DISTINCT segment FROM accounts").fetchall()}
    assert len(segments) >= 4 and Segment.MARKET_MAKER.value in segments
    thin = con.execute("SELECT asset FROM assets ORDER BY float_qty LIMIT 1").fetchone()[0]
    assert thin == "PUMP-USD"
    # market makers quote and cancel; takers cross
    assert (
        con.execute(
            "SELECT count(*) FROM orders o JOIN accounts a USING (account_id) "
            "WHERE a.segment = 'market_maker' AND o.event = 'cancel'"
        ).fetchone()[0]
        > 0
    )


def test_simulate_same_seed_same_tables_other_seed_differs():
    a, b, c = simulate(11, trades=SMALL), simulate(11, trades=SMALL), simulate(12, trades=SMALL)
    for name in a:
        assert a[name].equals(b[name]), name
    assert not a["trades"].equals(c["trades"])


def _digest(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


def test_generate_to_dir_byte_identical_parquet_and_valid(tmp_path):
    generate_to_dir(tmp_path / "a", seed=3, trades=SMALL, csv=False)
    generate_to_dir(tmp_path / "b", seed=3, trades=SMALL, csv=False)
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(da) == 7 and da == db
    validate_dir(tmp_path / "a")


def test_generate_unknown_scale_is_clear():
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        simulate(1, scale="huge")


def test_cli_generate_small_writes_every_table_with_csv(tmp_path):
    out = tmp_path / "d"
    res = CliRunner().invoke(app, ["generate", "--out", str(out), "--seed", "1", "--scale", "small"])
    assert res.exit_code == 0, res.output
    for name in ("trades", "orders", "accounts", "network", "positions", "assets", "labels"):
        assert (out / f"{name}.parquet").exists(), name
        assert (out / f"{name}.csv").exists(), name
    validate_dir(out)


# -- worlds: liquidity tiers, variants, owners, clean worlds (issue 12) -------------------------------------

MID = 20_000  # enough background trades that every book of a random world trades


@pytest.fixture(scope="module")
def random_world() -> dict[str, pa.Table]:
    return simulate(4, trades=MID, world="random")


def test_simulate_random_world_spans_tiers_from_micro_cap_to_major(random_world):
    from market_surveillance.enums import LiquidityTier

    con = _con(random_world)
    rows = con.execute(
        """SELECT l.tier, t.asset, median(t.price), any_value(a.float_qty) * median(t.price), count(*) / 1440.0
           FROM trades t JOIN assets a USING (asset)
           JOIN (SELECT DISTINCT asset, tier FROM labels) l USING (asset) GROUP BY ALL"""
    ).fetchall()
    tiers = {r[0] for r in rows}
    assert tiers == {t.value for t in LiquidityTier}
    for tier, _, price, mcap, per_min in rows:
        if tier == LiquidityTier.MICRO_CAP:
            # the thin token: under $0.10, market cap $1–10M, a few trades a minute
            assert price < 0.10 and 1e6 <= mcap <= 1.1e7 and 1 <= per_min <= 6
        if tier == LiquidityTier.MAJOR:
            assert price >= 15_000 and mcap >= 2e11


def test_simulate_random_world_labels_name_variant_and_tier(random_world):
    from market_surveillance.simulate.scenarios import SCENARIOS, variants_of

    lab = random_world["labels"].to_pandas()
    known = {v for n in SCENARIOS for v in variants_of(n)}
    assert lab.variant.isin(known).all() and lab.tier.notna().all()
    # every typology comes in at least two variants
    assert (lab.groupby("typology").variant.nunique() >= 2).all()
    assert lab.typology.nunique() == len(SCENARIOS)


def test_generate_random_world_byte_identical_and_valid(tmp_path):
    generate_to_dir(tmp_path / "a", seed=9, trades=MID, csv=False, world="random")
    generate_to_dir(tmp_path / "b", seed=9, trades=MID, csv=False, world="random")
    da, db = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert len(da) == 7 and da == db
    validate_dir(tmp_path / "a")


def test_simulate_random_world_other_seed_other_universe():
    a = simulate(1, trades=MID, world="random", inject=False)["assets"]
    b = simulate(2, trades=MID, world="random", inject=False)["assets"]
    assert not a.equals(b)


def test_simulate_clean_random_world_has_no_scenario_rows():
    tables = simulate(6, trades=MID, world="random", inject=False)
    assert tables["labels"].num_rows == 0
    for name in ("trades", "orders"):
        assert tables[name]["scenario_id"].null_count == tables[name].num_rows


def test_simulate_owners_hold_several_accounts_that_never_trade_each_other_unlabelled(random_world):
    con = _con(random_world)
    multi = con.execute(
        "SELECT count(*) FROM (SELECT owner_id FROM accounts GROUP BY 1 HAVING count(*) > 1)"
    ).fetchone()[0]
    assert multi >= 5
    assert con.execute("SELECT count(*) FROM accounts WHERE owner_id IS NULL").fetchone()[0] == 0
    linked = con.execute(
        """SELECT t.scenario_id FROM trades t
           JOIN accounts b ON b.account_id = t.buyer_id JOIN accounts s ON s.account_id = t.seller_id
           WHERE b.owner_id = s.owner_id"""
    ).fetchall()
    assert linked and all(sid is not None for (sid,) in linked), "owner-linked trades only in scenarios"


def test_simulate_reference_world_marking_the_close_trades_before_the_daily_fixing():
    tables = simulate(3, trades=SMALL)
    lab = tables["labels"].to_pandas()
    mark = lab[lab.typology == "marking_the_close"]
    assert len(mark) == 4 and set(mark.variant) == {"ramp", "last_minute"}
    close = pd.Timestamp("2024-03-02", tz="UTC")  # the 00:00 UTC daily close at the end of the day
    assert (mark.end_ts <= close).all() and (mark.start_ts >= close - pd.Timedelta(minutes=16)).all()


def test_cli_generate_random_clean_world(tmp_path):
    out = tmp_path / "clean"
    res = CliRunner().invoke(
        app,
        ["generate", "--out", str(out), "--seed", "2", "--trades", str(MID), "--world", "random", "--clean"],
    )
    assert res.exit_code == 0, res.output
    import pyarrow.parquet as pq

    assert pq.read_table(out / "labels.parquet").num_rows == 0
    assert "owner_id" in pq.read_table(out / "accounts.parquet").column_names


def test_simulate_unknown_world_is_clear():
    with pytest.raises(ValueError, match="unknown world 'mars'"):
        simulate(1, trades=SMALL, world="mars")


@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
def test_simulate_random_world_any_seed_orders_and_trades_consistent(seed: int):
    check_invariants(simulate(seed, trades=12_000, world="random"))


def test_simulate_internal_transfers_only_on_request_unlabelled_between_one_owners_accounts():
    tables = simulate(6, trades=MID, world="random", inject=False, internal_transfers=12)
    check_invariants(tables)
    con = _con(tables)
    linked = con.execute(
        """SELECT count(*), count(t.scenario_id) FROM trades t
           JOIN accounts b ON b.account_id = t.buyer_id JOIN accounts s ON s.account_id = t.seller_id
           WHERE b.owner_id = s.owner_id AND t.buyer_id <> t.seller_id"""
    ).fetchone()
    assert linked == (12, 0)
    assert tables["labels"].num_rows == 0
