"""Shared intermediates: derived tables several rules read, computed once per run.

Each intermediate is a named Ibis function of the base tables (``trades``, ``orders``, ...). A rule names
the intermediates it reads in its ``reads`` ClassVar and gets them with :func:`get`, which returns the
materialised table when the caller put one in the tables mapping and builds the expression from the base
tables otherwise. So a rule run on bare base tables (tests, notebooks) and a rule run by the pipeline on
materialised intermediates compute the same thing, and the pipeline pays for each intermediate once
instead of once per rule.

The pipeline (:func:`market_surveillance.pipeline.run_rules`) calls :func:`materialize` with
:func:`needed` of the rules it runs; any other runner (the online buffer, a notebook) can do the same::

    names = needed(rules, tables)
    mat = materialize(tables, names)          # {name: materialised ir.Table} on the tables' own backend
    try:
        alerts = [rule.run({**tables, **mat}) for rule in rules]
    finally:
        release(mat)

Every intermediate is per asset (an ``asset`` column, no cross-asset statistic), so filtering it by asset
equals building it from the filtered base tables: per-asset parameter overrides
(:meth:`Rule.expression`) stay exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import ibis.expr.types as ir

from market_surveillance.rules._common import account_trades, asset_liquidity, order_lifecycle, order_norms

Tables = Mapping[str, ir.Table]


@dataclass(frozen=True)
class Intermediate:
    """A derived table: its name, the base tables it is built from, the builder and whether a run
    materialises it (``shared``) or lets each reader inline the expression."""

    name: str
    needs: tuple[str, ...]
    build: Callable[[Tables], ir.Table]
    doc: str
    #: materialised once per run by :func:`needed`'s callers. False where measurement showed the copy costs
    #: what it saves: a projection of a base table the engine scans and prunes per reader about as fast as
    #: a temp table (figures: docs/performance.md, "Shared intermediates")
    shared: bool = True


#: every shared intermediate by name (the names are keys of the tables mapping rules receive)
INTERMEDIATES: dict[str, Intermediate] = {
    i.name: i
    for i in (
        Intermediate(
            "liquidity",
            ("trades",),
            lambda t: asset_liquidity(t["trades"]),
            "per asset: median trade notional, ADV, typical price step and half-hour move (`_common.asset_liquidity`)",
        ),
        Intermediate(
            "order_norms",
            ("orders",),
            lambda t: order_norms(t["orders"]),
            "per asset: median size of new orders (`_common.order_norms`)",
        ),
        Intermediate(
            "account_trades",
            ("trades",),
            lambda t: account_trades(t["trades"]),
            "one row per trade leg with a known account (`_common.account_trades`)",
            shared=False,
        ),
        Intermediate(
            "lifecycle",
            ("orders",),
            lambda t: order_lifecycle(t["orders"]),
            "one row per order: its `new` fields, first cancel, filled quantity (`_common.order_lifecycle`)",
            shared=False,
        ),
    )
}


#: key of an optional one-row table an online runner adds to the tables it passes a rule: ``ts_us``, the
#: event time from which the rule's *hits* can still matter to this micro-batch, and ``until_us``, the
#: batch's end. Everything before ``ts_us`` was decided by earlier batches and anything decided after
#: ``until_us`` waits for a later one; a rule may leave such hits (not the rows its windows read) out, so
#: its windows run on the new rows instead of the whole trailing horizon. See :func:`decide_from`.
DECIDE_FROM = "decide_from"


def decide_from(t: Tables) -> ir.IntegerScalar | None:
    """The event time (µs) from which hits matter (:data:`DECIDE_FROM`), or None: every hit matters (batch).

    The online runner sets it at least one episode gap before the earliest time at which this batch can
    raise a new alert (``online.OnlineState.reconcile``): a new episode's first hit lies after it, with any
    earlier hit of the same entity more than a gap before; the hits of an episode already raised that lie
    after it fall inside that alert's window, so the episode is still continued, not raised again.
    """
    tab = t.get(DECIDE_FROM)
    return None if tab is None else tab.ts_us.max().as_scalar()


def decide_until(t: Tables) -> ir.IntegerScalar | None:
    """The end (µs) of the micro-batch (:data:`DECIDE_FROM`): an alert first decidable after it is left
    for a later batch. None in a batch run."""
    tab = t.get(DECIDE_FROM)
    return None if tab is None else tab.until_us.max().as_scalar()


def bars_name(bucket_s: int) -> str:
    """Key of the activity bars of ``bucket_s`` an online runner may add to a rule's tables."""
    return f"bars_{int(bucket_s)}"


def activity_bars(t: Tables, bucket_s: int) -> ir.Table:
    """``bars.activity_bars`` of ``t["trades"]``: the runner's table when it keeps them (online, per bucket,
    only the buckets new prints land in recomputed; :attr:`Rule.bar_params`), else built from the trades."""
    from market_surveillance.rules.bars import activity_bars as build

    name = bars_name(bucket_s)
    return t[name] if name in t else build(t["trades"], bucket_s)


def get(t: Tables, name: str) -> ir.Table:
    """The intermediate ``name``: the materialised table in ``t`` when present, else built from ``t``."""
    if name in t:
        return t[name]
    return INTERMEDIATES[name].build(t)


def needed(rules: Iterable[object], tables: Tables | None = None, *, everything: bool = False) -> list[str]:
    """The shared intermediates read by at least one of ``rules`` (their ``reads``), in declaration order.

    With ``tables``, only those whose base tables are all present (a rule that would need a missing
    table is skipped anyway) and that ``tables`` does not already hold. ``everything`` includes the
    intermediates that are not ``shared`` (inlined by default).
    """
    wanted = {name for rule in rules for name in getattr(rule, "reads", ())}
    out = []
    for name, inter in INTERMEDIATES.items():
        if name not in wanted or not (inter.shared or everything):
            continue
        if tables is not None and (name in tables or any(b not in tables for b in inter.needs)):
            continue
        out.append(name)
    return out


def materialize(tables: Tables, names: Iterable[str], *, prefix: str | None = None) -> dict[str, ir.Table]:
    """Compute each named intermediate once on the backend of ``tables`` and return ``{name: table}``.

    Backend-agnostic: on DuckDB a temp table, on PySpark a cached DataFrame behind a temp view (Spark fills it
    on first use). Without ``prefix`` the tables get fresh names (Ibis ``Table.cache``); with it they are
    ``<prefix><name>``, created or replaced, so SQL compiled once against them stays valid when a runner
    re-materialises them for each batch (the online buffer). Pass the result merged into the tables mapping
    to the rules, then :func:`release` it.
    """
    out: dict[str, ir.Table] = {}
    for name in names:
        expr = INTERMEDIATES[name].build(tables)
        out[name] = expr.cache() if prefix is None else _create(expr, f"{prefix}{name}")
    return out


def _create(expr: ir.Table, table_name: str) -> ir.Table:
    backend = expr._find_backend()
    if backend.name == "pyspark":
        df = backend._session.sql(str(backend.compile(expr))).cache()
        df.createOrReplaceTempView(table_name)
    else:
        backend.create_table(table_name, expr, temp=True, overwrite=True)
    return backend.table(table_name)


def release(materialized: Mapping[str, ir.Table]) -> None:
    """Free what :func:`materialize` made (drop the temp tables, unpersist the DataFrames)."""
    for tab in materialized.values():
        if isinstance(tab, ir.CachedTable):
            tab.release()
            continue
        backend, table_name = tab._find_backend(), tab.get_name().rsplit(".", 1)[-1]
        if backend.name == "pyspark":
            backend._session.catalog.uncacheTable(table_name)
            backend._session.catalog.dropTempView(table_name)
        else:
            backend.drop_table(table_name, force=True)
