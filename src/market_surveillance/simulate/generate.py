"""One simulated trading day: price paths → accounts → injected scenarios → background flow → tables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from market_surveillance.schema import conform, encode_csv
from market_surveillance.simulate.background import (
    assign_owners,
    create_population,
    generate_background,
)
from market_surveillance.simulate.background import (
    internal_transfers as _transfers,
)
from market_surveillance.simulate.context import (
    Accounts,
    Labels,
    PricePaths,
    SimContext,
    Tape,
    component_rng,
)
from market_surveillance.simulate.universe import (
    Population,
    default_universe,
    n_background_trades,
    random_universe,
)

TABLE_ORDER = ("trades", "orders", "accounts", "network", "positions", "assets", "labels")


def simulate(
    seed: int,
    scale: str = "small",
    trades: int | None = None,
    scenario_counts: Mapping[str, int] | None = None,
    *,
    inject: bool = True,
    world: str = "reference",
    internal_transfers: int = 0,
) -> dict[str, pa.Table]:
    """Every canonical table of one simulated day (deterministic for a given seed).

    ``world`` is ``reference`` (the fixed five-asset universe and its scenarios) or ``random`` (a universe
    drawn over the liquidity tiers from the seed, with every variant of every typology); see
    ``simulate.scenarios``. ``scenario_counts`` overrides how many instances are injected (by scenario
    name or ``"scenario:variant"``); ``inject=False`` gives a clean world: background flow only.
    ``internal_transfers`` adds that many innocent, unlabelled transfers between accounts of one owner booked
    as trades (the known false positive of owner-linked wash-trade detection; none by default).
    """
    from market_surveillance.simulate.scenarios import WORLDS, inject_all

    if world not in WORLDS:
        raise ValueError(f"unknown world {world!r}: use one of {', '.join(WORLDS)}")
    n = n_background_trades(scale, trades)
    seed_seq = np.random.SeedSequence(seed)
    u = default_universe() if world == "reference" else random_universe(component_rng(seed_seq, "universe"))
    ctx = SimContext(
        u, PricePaths(u, component_rng(seed_seq, "prices")), Accounts(), Tape(), Labels(), seed_seq
    )
    bg = create_population(ctx, Population.for_trades(n), ctx.rng("population"))
    assign_owners(ctx, bg, ctx.rng("owners"))
    if inject:
        inject_all(ctx, scenario_counts, world=world)
    if internal_transfers:
        _transfers(ctx, bg, internal_transfers, ctx.rng("internal_transfers"))
    generate_background(ctx, n, bg, ctx.rng("background"))
    trades_t, orders_t = ctx.tape.to_tables()
    accounts = _accounts(ctx, trades_t, set(bg.all_ids), ctx.rng("baselines"))
    return {
        "trades": trades_t,
        "orders": orders_t,
        "accounts": accounts,
        "network": conform(
            "network",
            {
                "account_id": pa.array(ctx.accounts.net_account, pa.string()),
                "device_id": pa.array(ctx.accounts.net_device, pa.string()),
                "ip_subnet": pa.array(ctx.accounts.net_subnet, pa.string()),
            },
        ),
        "positions": _positions(ctx, trades_t, bg.all_ids, ctx.rng("positions")),
        "assets": conform(
            "assets",
            {
                "asset": pa.array([a.asset for a in u.assets], pa.string()),
                "float_qty": pa.array([a.float_qty for a in u.assets], pa.float64()),
            },
        ),
        "labels": ctx.labels.to_table(),
    }


def _accounts(ctx: SimContext, trades: pa.Table, background: set[str], rng: np.random.Generator) -> pa.Table:
    """Accounts with baselines: background accounts' norm is their realised hourly notional ×U(0.8, 1.5);
    scenario accounts keep the baseline their injector declared (their history, not this day)."""
    notional = pc.multiply(trades["price"], trades["qty"])
    con = duckdb.connect()
    con.register("t", pa.table({"b": trades["buyer_id"], "s": trades["seller_id"], "n": notional}))
    rows = con.execute(
        "SELECT a, sum(n) FROM (SELECT b AS a, n FROM t UNION ALL SELECT s AS a, n FROM t) GROUP BY a"
    ).fetchall()
    realised = dict(rows)
    hours = (ctx.universe.end_us - ctx.universe.start_us) / (3600 * 1_000_000)
    factors = rng.uniform(0.8, 1.5, len(ctx.accounts.ids))
    baselines = [
        (realised.get(a, 0.0) / hours) * f if a in background else b
        for a, b, f in zip(ctx.accounts.ids, ctx.accounts.baselines, factors, strict=True)
    ]
    return conform(
        "accounts",
        {
            "account_id": pa.array(ctx.accounts.ids, pa.string()),
            "segment": pa.array(ctx.accounts.segments, pa.string()),
            "baseline_hourly_notional": pa.array(np.round(baselines, 2), pa.float64()),
            "owner_id": pa.array(ctx.accounts.owners, pa.string()),
        },
    )


def _positions(
    ctx: SimContext, trades: pa.Table, background: list[str], rng: np.random.Generator
) -> pa.Table:
    """End-of-day net positions = opening positions + net traded quantity, per account and asset."""
    opening = dict(ctx.opening_positions)
    # modest opening inventories for some background accounts (≪ 1 % of float)
    holders = rng.choice(len(background), size=len(background) // 5, replace=False)
    for i in np.sort(holders):
        a = ctx.universe.assets[int(rng.integers(len(ctx.universe.assets)))]
        key = (background[i], a.asset)
        opening[key] = opening.get(key, 0.0) + float(rng.uniform(1, 20) * a.typical_qty)
    con = duckdb.connect()
    con.register("t", trades.select(["buyer_id", "seller_id", "asset", "qty"]))
    con.register(
        "o",
        pa.table(
            {
                "account_id": pa.array([k[0] for k in opening], pa.string()),
                "asset": pa.array([k[1] for k in opening], pa.string()),
                "qty": pa.array(list(opening.values()), pa.float64()),
            }
        ),
    )
    as_of = ctx.universe.end_us
    res = con.sql(
        f"""
        SELECT account_id, asset, round(sum(qty), 8) AS net_qty, make_timestamp({as_of})::TIMESTAMPTZ AS as_of
        FROM (
            SELECT buyer_id AS account_id, asset, qty FROM t WHERE buyer_id IS NOT NULL
            UNION ALL SELECT seller_id, asset, -qty FROM t WHERE seller_id IS NOT NULL
            UNION ALL SELECT account_id, asset, qty FROM o
        )
        GROUP BY account_id, asset
        HAVING abs(sum(qty)) > 1e-9
        ORDER BY account_id, asset
        """
    ).to_arrow_table()
    return conform("positions", res)


def generate_to_dir(
    out: str | Path,
    seed: int = 1,
    scale: str = "small",
    trades: int | None = None,
    csv: bool | None = None,
    progress: bool = False,
    scenario_counts: Mapping[str, int] | None = None,
    *,
    world: str = "reference",
    inject: bool = True,
) -> dict[str, int]:
    """Simulate and write every table as ``<table>.parquet`` (and ``.csv`` when asked, by default at small
    scale). Same seed ⇒ byte-identical Parquet files. Returns rows per table."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if csv is None:
        csv = trades is None and scale == "small"
    if progress:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as prog:
            task = prog.add_task("simulating the trading day", total=len(TABLE_ORDER) + 1)
            tables = simulate(seed, scale, trades, scenario_counts, inject=inject, world=world)
            prog.advance(task)
            for name in TABLE_ORDER:
                prog.update(task, description=f"writing {name}")
                _write(out, name, tables[name], csv)
                prog.advance(task)
    else:
        tables = simulate(seed, scale, trades, scenario_counts, inject=inject, world=world)
        for name in TABLE_ORDER:
            _write(out, name, tables[name], csv)
    return {name: tables[name].num_rows for name in TABLE_ORDER}


def _write(out: Path, name: str, table: pa.Table, csv: bool) -> None:
    # no wall-clock metadata: identical input gives identical bytes
    pq.write_table(table, out / f"{name}.parquet", compression="zstd", store_schema=True)
    if csv:
        pacsv.write_csv(encode_csv(table), out / f"{name}.csv")  # lists as JSON arrays (docs/schema.md)
    else:
        (out / f"{name}.csv").unlink(missing_ok=True)
