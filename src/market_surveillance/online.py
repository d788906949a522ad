"""Online surveillance: the same rules on micro-batches of a stream, alerts decided as the data arrives.

A stream is read in event-time order (a file or folder replayed, or a folder tailed for new parts) and cut
into micro-batches at ``step`` boundaries of event time. After each batch every rule runs on the trailing
data it needs (its :meth:`Rule.lookback_s`, plus its episode gap and the batch span) and the result is
reconciled with what was already decided:

* an alert whose ``detected_at`` lies after "now" is not decided yet (e.g. a one-minute bar still open);
* an alert overlapping an alert already raised for the same rule and entity continues that episode: the
  stored alert keeps its id, start and ``detected_at`` and has its end, value, score and evidence extended;
* any other alert whose last evidence lies where the trailing data is complete is new and is raised.

Decisions depend on the data only, not on where batches were cut, so a replay at any speed, a restart or a
batch run give the same alerts (exceptions in ``docs/online.md``). State is bounded: events older than the
longest rule horizon and episodes that can no longer continue are dropped.

:class:`OnlineState` is the engine-neutral step (any Ibis tables); :class:`DuckDBBuffer` keeps the trailing
data in DuckDB and runs the rules' SQL, compiled once; :func:`watch` drives a source into both and the sinks.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_surveillance.alerts import ALERT_SCHEMA, MAX_EVIDENCE, read_alerts, write_alerts
from market_surveillance.rules.base import Rule
from market_surveillance.schema import TABLES, DataProfile, InputError, SchemaError, conform, one_line

US = 1_000_000
TIMED = ("trades", "orders", "book")
#: the column that orders a timed table's events within one timestamp
ORDER_KEY = {"trades": "trade_id", "orders": "event_id", "book": "seq"}
#: trailing event time the shared norms (per-asset liquidity) are taken over, and how often they are rebuilt
NORMS_S = 86_400
NORMS_EVERY_S = 3_600
STATIC = tuple(name for name in TABLES if name not in TIMED)


def parse_duration(text: str | float) -> float:
    """Seconds from ``5s``, ``250ms``, ``2m``, ``1h`` or a bare number of seconds."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        s = text.strip().lower()
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        for unit in ("ms", "s", "m", "h"):
            if s.endswith(unit) and s[: -len(unit)].replace(".", "", 1).isdigit():
                value = float(s[: -len(unit)]) * units[unit]
                break
        else:
            try:
                value = float(s)
            except ValueError:
                raise ValueError(f"step {text!r}: expected a duration such as 5s, 500ms, 1m") from None
    if not value > 0 or math.isinf(value):
        raise ValueError(f"step {text!r}: must be a positive duration")
    return value


# ---------------------------------------------------------------------------------------------
# The step: reconcile a rule's alerts on the trailing data with what was already decided
# ---------------------------------------------------------------------------------------------


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _us(x: Any) -> int:
    """Microseconds since epoch of an Arrow/Python timestamp value."""
    if isinstance(x, dt.datetime):
        if x.tzinfo is None:
            x = x.replace(tzinfo=dt.UTC)
        return (x - _EPOCH) // dt.timedelta(microseconds=1)  # exact, unlike float seconds
    return int(x)


def _merge_lists(a: Sequence[str], b: Sequence[str]) -> list[str]:
    # same as finalize_alerts on the whole episode: the smallest MAX_EVIDENCE ids of the union
    return sorted(set(a) | set(b))[:MAX_EVIDENCE]


@dataclass
class OnlineState:
    """What an online run remembers between micro-batches: the episodes that can still continue.

    ``open`` maps rule_id → alert_id → alert row (dict in :data:`ALERT_SCHEMA`). ``watermark`` is the event
    time (µs) up to which every decision has been taken.
    """

    rules: list[Rule]
    step_us: int
    watermark: int | None = None
    open: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def horizon_us(self, rule: Rule, span_us: int) -> int:
        """Trailing event time rule ``rule`` reads at a batch spanning ``span_us``."""
        return int((rule.lookback_s() + rule.episode_gap_s()) * US) + span_us + 2 * self.step_us

    def max_horizon_us(self, span_us: int) -> int:
        return max((self.horizon_us(r, span_us) for r in self.rules), default=span_us)

    def decide_from_us(self, rule: Rule, now: int, span_us: int, previous: int | None) -> int:
        """Event time from which ``rule``'s hits can matter at ``now`` (``intermediates.decide_from``).

        A new alert is raised only if first decided after ``now - span - gap - 2 steps`` (see
        :meth:`reconcile`); one more episode gap before that, an entity's earlier hits are either a
        separate episode or inside an alert already raised, whose window holds every hit up to the last
        evaluation ``previous`` of the rule (a rule skipped on some batches reaches back to it).
        """
        gap = int(rule.episode_gap_s() * US)
        since = now - span_us if previous is None else min(now - span_us, previous)
        return since - 2 * gap - 2 * self.step_us

    def restore(self, alerts: pa.Table, watermark: int) -> None:
        """Resume from alerts already raised (store or out file) and the watermark they were decided up to."""
        self.watermark = watermark
        by_id = {r.rule_id: r for r in self.rules}
        for row in alerts.select(ALERT_SCHEMA.names).to_pylist():
            rule = by_id.get(row["rule_id"])
            if rule is None:
                continue
            if _us(row["window_end"]) >= watermark - self.horizon_us(rule, 0):
                self.open.setdefault(rule.rule_id, {})[row["alert_id"]] = row

    def reconcile(self, rule: Rule, alerts: pa.Table, now: int, span_us: int) -> list[dict[str, Any]]:
        """New and continued alerts of ``rule`` among ``alerts`` (its result on the trailing data at ``now``)."""
        gap = int(rule.episode_gap_s() * US)
        horizon = self.horizon_us(rule, span_us)
        # decisions from here on had their whole lookback in view: results there are exact
        exact_from = now - span_us - gap - 2 * self.step_us
        known = self.open.setdefault(rule.rule_id, {})
        changed: dict[str, dict[str, Any]] = {}
        rows = alerts.to_pylist()
        # two alerts of one evaluation are two episodes by the rule's own judgement (e.g. MS033's bid and ask
        # levels of one instrument): neither continues the other, whatever their entity columns say
        now_ids = {a["alert_id"] for a in rows}
        for a in rows:
            if _us(a["detected_at"]) > now:
                continue  # its decision needs data not seen yet
            k = self._match({i: r for i, r in known.items() if i == a["alert_id"] or i not in now_ids}, a, gap)
            if k is not None and _us(a["window_end"]) < exact_from:
                # hits this old were judged on a view that no longer holds their whole lookback (a bar's
                # trailing baseline cut by the horizon): they neither extend nor re-value a raised alert
                continue
            if k is not None:
                upd = dict(k)
                if _us(a["window_end"]) > _us(k["window_end"]):
                    upd["window_end"] = a["window_end"]
                    upd["explanation"] = a["explanation"]
                upd["value"] = max(k["value"], a["value"]) if not math.isnan(a["value"]) else k["value"]
                upd["score"] = max(k["score"], a["score"])
                for col in ("evidence_trade_ids", "evidence_order_ids"):
                    upd[col] = _merge_lists(k[col] or [], a[col] or [])
                if upd != k:
                    known[k["alert_id"]] = upd
                    changed[k["alert_id"]] = upd
            elif _us(a["detected_at"]) >= exact_from and a["alert_id"] not in known:
                known[a["alert_id"]] = a
                changed[a["alert_id"]] = a
        # episodes whose end left the trailing data can no longer be continued: forget them
        for aid in [aid for aid, k in known.items() if _us(k["window_end"]) < now - horizon]:
            del known[aid]
        return list(changed.values())

    @staticmethod
    def _match(known: Mapping[str, dict[str, Any]], a: dict[str, Any], gap: int) -> dict[str, Any] | None:
        """The raised alert ``a`` continues: same entity, and ``a`` was first decidable before that alert's
        last evidence (plus half the episode gap: a bar is decided when it closes, after its last print).
        A separate episode's first hit comes more than the gap after the previous episode's last one."""
        if a["alert_id"] in known:
            return known[a["alert_id"]]
        acc = set(a["accounts"] or [])
        a_det = _us(a["detected_at"])
        for k in known.values():
            if k["asset"] != a["asset"] or k["venue"] != a["venue"]:
                continue
            k_acc = set(k["accounts"] or [])
            # accounts are the entity, but a ring's membership can grow as its episode goes on
            if (acc or k_acc) and not (acc & k_acc):
                continue
            if _us(k["window_start"]) <= a_det <= _us(k["window_end"]) + gap // 2:
                return k
        return None


def rows_to_alerts(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    if not rows:
        return ALERT_SCHEMA.empty_table()
    return pa.Table.from_pylist([dict(r) for r in rows], schema=ALERT_SCHEMA)


# ---------------------------------------------------------------------------------------------
# DuckDB buffer of the trailing events
# ---------------------------------------------------------------------------------------------


class LiquidityState:
    """What ``_common.asset_liquidity`` windows over, kept as the trades arrive: each print's notional and
    move from the asset's previous print (with that print's time), and the half-hour bars' open and close.

    The hourly norms over the trailing day are then aggregates of these tables (:meth:`sql`) instead of two
    windows sorting a day of trades. Exact: a move counts only if its previous print is in the window (the
    window's first print has none, as in the lag over the window), and the two bars the window's ends cut are
    rebuilt from the trades in view. Trades appended out of time order (late events) mark the state stale; it
    is rebuilt from the buffer at the next refresh.
    """

    def __init__(self, con: Any):
        self.con = con
        self.last_us: int | None = None  # the newest print appended
        self.stale = False
        con.execute(
            "CREATE OR REPLACE TABLE ms_liq_prints "
            "(asset VARCHAR, ts_us BIGINT, notional DOUBLE, move DOUBLE, prev_us BIGINT)"
        )
        con.execute(
            "CREATE OR REPLACE TABLE ms_liq_last (asset VARCHAR, ts_us BIGINT, trade_id VARCHAR, price DOUBLE)"
        )
        con.execute("CREATE OR REPLACE TABLE ms_liq_bars (asset VARCHAR, bucket BIGINT, open DOUBLE, close DOUBLE)")

    @staticmethod
    def _bucket(col: str) -> str:
        from market_surveillance.rules._common import MOVE_BAR_S

        return f"CAST(FLOOR({col} / {MOVE_BAR_S * US}) AS BIGINT)"  # as bars() compiles

    def _bars(self, source: str, where: str) -> str:
        """open/close per (asset, bucket) of ``source``'s rows matching ``where``, as ``bars()`` takes them."""
        return (
            "SELECT asset, bucket, MAX(_first) AS open, MAX(_last) AS close FROM ("
            "SELECT asset, bucket, FIRST_VALUE(price) OVER w AS _first, LAST_VALUE(price) OVER w AS _last FROM ("
            f"SELECT asset, price, ts_us, trade_id, {self._bucket('ts_us')} AS bucket FROM {source} WHERE {where}) "
            "WINDOW w AS (PARTITION BY asset, bucket ORDER BY ts_us ASC, trade_id ASC "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)) GROUP BY asset, bucket"
        )

    def append(self, first_us: int, last_us: int, source: str = "_new") -> None:
        """Add the prints of ``source`` (just inserted into ``trades``), spanning ``first_us``..``last_us``."""
        if self.stale or (self.last_us is not None and first_us <= self.last_us):
            self.stale = True
            return
        con = self.con
        # moves: the lag over the new prints and each asset's last print before them
        con.execute(
            "INSERT INTO ms_liq_prints SELECT asset, ts_us, notional, ABS(price - prev) / prev * 10000, prev_us "
            "FROM (SELECT *, LAG(price) OVER w AS prev, LAG(ts_us) OVER w AS prev_us FROM ("
            f"SELECT asset, ts_us, trade_id, price, price * qty AS notional, FALSE AS old FROM {source} "
            "UNION ALL SELECT asset, ts_us, trade_id, price, NULL, TRUE FROM ms_liq_last) "
            "WINDOW w AS (PARTITION BY asset ORDER BY ts_us ASC, trade_id ASC)) WHERE NOT old"
        )
        con.execute(
            "CREATE OR REPLACE TABLE ms_liq_last AS SELECT asset, ts_us, trade_id, price FROM ("
            "SELECT *, row_number() OVER (PARTITION BY asset ORDER BY ts_us DESC, trade_id DESC) AS _rn FROM ("
            f"SELECT asset, ts_us, trade_id, price FROM {source} UNION ALL SELECT * FROM ms_liq_last)) "
            "WHERE _rn = 1"
        )
        # bars: the buckets the new prints fall in are rebuilt from the buffer (the first may have begun before)
        b0 = con.execute(f"SELECT {self._bucket(str(int(first_us)))}").fetchone()[0]
        con.execute(f"DELETE FROM ms_liq_bars WHERE bucket >= {b0}")
        from market_surveillance.rules._common import MOVE_BAR_S

        touched = f"ts_us >= {(b0 - 1) * MOVE_BAR_S * US} AND {self._bucket('ts_us')} >= {b0}"
        con.execute(f"INSERT INTO ms_liq_bars {self._bars('trades', touched)}")
        self.last_us = last_us

    def rebuild(self) -> None:
        """From the buffer's trades, after an out-of-order append."""
        for t in ("ms_liq_prints", "ms_liq_last", "ms_liq_bars"):
            self.con.execute(f"DELETE FROM {t}")
        self.stale, self.last_us = False, None
        first, last = self.con.execute("SELECT min(ts_us), max(ts_us) FROM trades").fetchone()
        if first is not None:
            self.append(int(first), int(last), source="trades")

    def prune(self, before_us: int) -> None:
        self.con.execute(f"DELETE FROM ms_liq_prints WHERE ts_us <= {int(before_us)}")
        self.con.execute(f"DELETE FROM ms_liq_bars WHERE bucket < {self._bucket(str(int(before_us)))}")

    def sql(self, cut_us: int, until_us: int) -> str:
        """``asset_liquidity`` of the trades in (``cut_us``, ``until_us``] (the ``trades_norms`` view, whose
        variables the caller has set to them), from the kept prints and bars."""
        from market_surveillance.rules._common import MOVE_MIN_BARS

        if self.stale:
            self.rebuild()
        day_us = 86_400 * US
        lo, hi = self._bucket(str(int(cut_us))), self._bucket(str(int(until_us)))
        m = "ABS((close / open) - 1.0) * 10000"
        # the two bars the window's ends cut, from the trades in view
        edges = self._bars("trades_norms", f"{self._bucket('ts_us')} IN ({lo}, {hi})")
        return (
            "WITH p AS (SELECT * FROM ms_liq_prints "
            f"WHERE ts_us > {int(cut_us)} AND ts_us <= {int(until_us)}), "
            "liq AS (SELECT asset, QUANTILE_CONT(notional, 0.5) AS med_notional, "
            f"SUM(notional) / (CAST(GREATEST(MAX(ts_us) - MIN(ts_us), {day_us // 24}) AS DOUBLE) / {day_us}) "
            f"AS adv, QUANTILE_CONT(CASE WHEN prev_us > {int(cut_us)} AND move > 0 THEN move ELSE NULL END, 0.5) "
            "AS move_bps FROM p GROUP BY asset), "
            f"b AS (SELECT asset, open, close FROM ms_liq_bars WHERE bucket > {lo} AND bucket < {hi} "
            f"UNION ALL SELECT asset, open, close FROM ({edges})), "
            "h AS (SELECT asset AS h_asset, COUNT(*) AS _n, "
            f"QUANTILE_CONT(CASE WHEN {m} > 0 THEN {m} ELSE NULL END, 0.5) AS move_30m_bps FROM b GROUP BY asset) "
            "SELECT liq.asset, med_notional, adv, move_bps, "
            f"CASE WHEN _n >= {MOVE_MIN_BARS} THEN h.move_30m_bps ELSE NULL END AS move_30m_bps "
            "FROM liq LEFT JOIN h ON liq.asset = h.h_asset"
        )


class DuckDBBuffer:
    """The trailing events in DuckDB tables; each rule reads a view cut at its own horizon.

    A rule whose ``run`` is the base one (a pure Ibis expression) is compiled to SQL once and re-executed on
    every batch (the horizon is a DuckDB variable); others (ML) are called through :meth:`Rule.execute`.
    """

    def __init__(self, static: Mapping[str, pa.Table], schemas: Mapping[str, pa.Schema], rules: list[Rule]):
        from market_surveillance.io.canonical import duckdb_backend

        self.backend = duckdb_backend()
        self.con = self.backend.con
        self.con.execute("SET TimeZone = 'UTC'")
        self.rules = rules
        self.timed = [name for name in TIMED if name in schemas]
        for name in self.timed:
            empty = schemas[name].empty_table()
            self.con.register("_empty", empty)
            self.con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM _empty')
            self.con.unregister("_empty")
        for name, tab in static.items():
            self.backend.create_table(f"ms_{name}", tab, overwrite=True)
        self._deleted = dict.fromkeys(self.timed, 0)
        self._rows = dict.fromkeys(self.timed, 0)
        self._sql: dict[str, str] = {}
        self._tables: dict[str, dict[str, ir.Table]] = {}
        self._physical: dict[str, str] = {name: f"ms_{name}" for name in static}
        # shared intermediates (per-asset norms): built once per refresh over the trailing NORMS_S, not by
        # every rule over its own view (intermediates.needed / materialize, as the batch pipeline does)
        from market_surveillance.rules import intermediates

        self.shared = intermediates.needed(rules, dict.fromkeys([*self.timed, *static]))
        self.norms_from: int | None = None
        self.first_us: int | None = None  # the earliest event appended (context of a restart included)
        self._norm_sql: dict[str, str] = {}
        if self.shared:
            self.con.execute("SET VARIABLE ms_cut_norms = 0::BIGINT")
            self.con.execute(f"SET VARIABLE ms_norms_until = {2**62}::BIGINT")
            norm_views: dict[str, ir.Table] = {}
            for name in self.timed:
                self.con.execute(
                    f'CREATE OR REPLACE VIEW "{name}_norms" AS SELECT * FROM "{name}" '
                    "WHERE ts_us > getvariable('ms_cut_norms') AND ts_us <= getvariable('ms_norms_until')"
                )
                norm_views[name] = self.backend.table(f"{name}_norms")
            for name in self.shared:
                expr = intermediates.INTERMEDIATES[name].build(norm_views)
                self._norm_sql[name] = str(self.backend.compile(expr))
                self._physical[name] = f"ms_i_{name}"
                self.con.execute(f'CREATE OR REPLACE TABLE "ms_i_{name}" AS {self._norm_sql[name]}')
        # activity bars kept per bucket (Rule.bar_params): after new prints only their buckets are recomputed,
        # and each rule reads the kept buckets wholly in its view plus its partly cut first bucket
        from market_surveillance.rules.bars import activity_bars

        self.bar_sizes = sorted({s for r in rules for s in r.bar_sizes()}) if "trades" in self.timed else []
        self._bars_sql: dict[int, str] = {}
        self._bars_dirty: int | None = None
        if self.bar_sizes:
            self.con.execute("SET VARIABLE ms_bars_from = 0::BIGINT")
            self.con.execute(
                'CREATE OR REPLACE VIEW "trades_bars_from" AS SELECT * FROM "trades" '
                "WHERE ts_us >= getvariable('ms_bars_from')"
            )
            for size in self.bar_sizes:
                expr = activity_bars(self.backend.table("trades_bars_from"), size)
                self._bars_sql[size] = str(self.backend.compile(expr))
                # typed as the expression says (the engine would widen the sums to 128 bits)
                self.backend.create_table(f"ms_bars_{size}", schema=expr.schema(), overwrite=True)
        # the liquidity norms' two windows (each print's move from the previous one, half-hour bars) over a
        # day of trades are kept per print and per bar as the trades arrive, so an hourly refresh is plain
        # aggregates over the trailing day (LiquidityState); the compiled SQL stays for the warm-up
        self.liquidity = (
            LiquidityState(self.con) if "liquidity" in self.shared and "trades" in self.timed else None
        )
        # the order norms' median reads only new orders' sizes: kept apart, a refresh reads no other event
        self.order_news = "order_norms" in self.shared and "orders" in self.timed
        if self.order_news:
            self.con.execute("CREATE OR REPLACE TABLE ms_order_news (asset VARCHAR, ts_us BIGINT, qty DOUBLE)")
        for rule in rules:
            var = f"ms_cut_{rule.rule_id.lower()}"
            self.con.execute(f"SET VARIABLE {var} = 0::BIGINT")
            views: dict[str, ir.Table] = {}
            for name in self.timed:
                view = f"{name}_{rule.rule_id.lower()}"
                self.con.execute(
                    f'CREATE OR REPLACE VIEW "{view}" AS SELECT * FROM "{name}" '
                    f"WHERE ts_us > getvariable('{var}')"
                )
                views[name] = self.backend.table(view)
            for name, physical in self._physical.items():
                views[name] = self.backend.table(physical)
            for size in sorted(rule.bar_sizes()) if self.bar_sizes else []:
                views[intermediates.bars_name(size)] = self._bars_view(rule, size, var)
            # where the rule's hits start to matter to the batch (intermediates.decide_from)
            rid = rule.rule_id.lower()
            self.con.execute(f"SET VARIABLE ms_from_{rid} = 0::BIGINT")
            self.con.execute(f"SET VARIABLE ms_until_{rid} = {2**62}::BIGINT")
            self.con.execute(
                f'CREATE OR REPLACE VIEW "decide_from_{rid}" AS '
                f"SELECT getvariable('ms_from_{rid}')::BIGINT AS ts_us, "
                f"getvariable('ms_until_{rid}')::BIGINT AS until_us"
            )
            views[intermediates.DECIDE_FROM] = self.backend.table(f"decide_from_{rule.rule_id.lower()}")
            self._tables[rule.rule_id] = views
            if type(rule).run is Rule.run and type(rule).execute is Rule.execute:
                expr = rule.expression(views)
                self.backend._run_pre_execute_hooks(expr)  # in-memory tables (e.g. clusters) registered once
                self._sql[rule.rule_id] = str(self.backend.compile(expr))

    def _bars_view(self, rule: Rule, size: int, var: str) -> ir.Table:
        """The activity bars of the trades in ``rule``'s view: the kept bars of the buckets wholly after its
        cut, and the first bucket's bar over the prints after the cut (exactly ``activity_bars`` of the view)."""
        from market_surveillance.rules.bars import activity_bars

        b_us = int(size * US)
        edge_bucket = f"CAST(FLOOR(getvariable('{var}') / {b_us}) AS BIGINT)"  # as Ibis compiles ts_us // b_us
        edge = f"trades_edge_{size}_{rule.rule_id.lower()}"
        self.con.execute(
            f'CREATE OR REPLACE VIEW "{edge}" AS SELECT * FROM "trades" '
            f"WHERE ts_us > getvariable('{var}') AND ts_us < ({edge_bucket} + 1) * {b_us}"
        )
        kept = f"bars_{size}_{rule.rule_id.lower()}"
        self.con.execute(
            f'CREATE OR REPLACE VIEW "{kept}" AS SELECT * FROM "ms_bars_{size}" WHERE bucket > {edge_bucket}'
        )
        return self.backend.table(kept).union(activity_bars(self.backend.table(edge), size))

    def _refresh_bars(self) -> None:
        """Recompute the kept bars of every bucket from the earliest print appended since the last time."""
        if self._bars_dirty is None:
            return
        for size, sql in self._bars_sql.items():
            bucket = self._bars_dirty // int(size * US)
            self.con.execute(f'DELETE FROM "ms_bars_{size}" WHERE bucket >= {bucket}')
            self.con.execute(f"SET VARIABLE ms_bars_from = {bucket * int(size * US)}::BIGINT")
            self.con.execute(f'INSERT INTO "ms_bars_{size}" {sql}')
        self._bars_dirty = None

    def append(self, name: str, tab: pa.Table) -> None:
        if tab.num_rows == 0:
            return
        self.con.register("_new", tab)
        self.con.execute(f'INSERT INTO "{name}" SELECT * FROM _new')
        if name == "trades" and self.liquidity is not None:
            self.liquidity.append(int(pc.min(tab["ts_us"]).as_py()), int(pc.max(tab["ts_us"]).as_py()))
        if name == "orders" and self.order_news:
            self.con.execute("INSERT INTO ms_order_news SELECT asset, ts_us, qty FROM _new WHERE event = 'new'")
        self.con.unregister("_new")
        self._rows[name] += tab.num_rows
        first = int(pc.min(tab["ts_us"]).as_py())
        self.first_us = first if self.first_us is None else min(self.first_us, first)
        if name == "trades" and self._bars_sql:
            self._bars_dirty = first if self._bars_dirty is None else min(self._bars_dirty, first)

    def prune(self, before_us: int) -> None:
        """Drop events at or before ``before_us``; rebuild a table once most of it is dead rows."""
        for size in self._bars_sql:  # buckets whose prints are all gone (a partly pruned one is never read)
            self.con.execute(f'DELETE FROM "ms_bars_{size}" WHERE (bucket + 1) * {int(size * US)} <= {int(before_us) + 1}')
        for name in self.timed:
            n = self.con.execute(f'DELETE FROM "{name}" WHERE ts_us <= {int(before_us)}').fetchone()[0]
            self._deleted[name] += n
            self._rows[name] -= n
            if self._deleted[name] > max(self._rows[name], 100_000):
                self.con.execute(f'CREATE OR REPLACE TABLE "{name}" AS SELECT * FROM "{name}" ORDER BY ts_us')
                self._deleted[name] = 0
        if self.liquidity is not None:
            self.liquidity.prune(before_us)
        if self.order_news:
            self.con.execute(f"DELETE FROM ms_order_news WHERE ts_us <= {int(before_us)}")

    def rows(self) -> int:
        return sum(self._rows.values())

    def refresh_norms(self, first_us: int, now_us: int, every_us: int) -> bool:
        """Rebuild the shared intermediates for a batch whose events run from ``first_us`` to ``now_us``
        when ``first_us`` crossed a multiple of ``every_us`` in event time, over the trailing
        :data:`NORMS_S` up to that boundary (norms move slowly; a decision reads the norms as of the last
        boundary before it, never data after it).

        Boundaries, not batch ends: a run cut into other batches, or restarted from its watermark (whose
        context re-reads the trailing day), reads the same norms. Until a whole ``every_us`` of data lies behind
        a boundary, the warm-up norms are built once from what is in view at the first batch.
        """
        if not self.shared:
            return False
        boundary = (first_us // every_us) * every_us
        if self.norms_from is not None and boundary <= self.norms_from:
            return False
        # less than a refresh period of data behind the boundary is too little to size anything by
        warm_up = self.first_us is None or boundary - self.first_us < every_us
        if warm_up and self.norms_from is not None:
            return False
        until = now_us if warm_up else boundary
        self.con.execute(f"SET VARIABLE ms_cut_norms = {int(until - NORMS_S * US)}::BIGINT")
        self.con.execute(f"SET VARIABLE ms_norms_until = {int(until)}::BIGINT")
        for name, sql in self._norm_sql.items():
            if name == "liquidity" and self.liquidity is not None and not warm_up:
                sql = self.liquidity.sql(int(until - NORMS_S * US), int(until))
            elif name == "order_norms" and self.order_news:
                # as _common.order_norms compiles, on the new orders kept apart
                sql = (
                    "SELECT asset, QUANTILE_CONT(qty, 0.5) AS med_order_qty FROM ms_order_news "
                    f"WHERE ts_us > {int(until - NORMS_S * US)} AND ts_us <= {int(until)} GROUP BY asset"
                )
            self.con.execute(f'CREATE OR REPLACE TABLE "ms_i_{name}" AS {sql}')
        self.norms_from = boundary
        return True

    def detach(self, rule: Rule, cut_us: int) -> Callable[[], pa.Table]:
        """Pin a snapshot of the buffer as it is now; the returned job runs ``rule`` on it.

        The job may run in another thread while batches keep being appended and pruned: it reads through
        its own cursor inside a transaction, which sees the tables as they were when this was called.
        """
        import ibis

        var = f"ms_cut_{rule.rule_id.lower()}"
        cur = self.con.cursor()
        cur.execute("SET TimeZone = 'UTC'")
        cur.execute("BEGIN TRANSACTION")
        for name in self.timed:  # a transaction's snapshot is taken at its first read, so read now
            cur.execute(f'SELECT count(*) FROM "{name}"').fetchone()
        cur.execute(f"SET VARIABLE {var} = {int(cut_us)}::BIGINT")
        rid = rule.rule_id.lower()
        # no kept bars here: a rule run off the path builds its bars from the pinned prints
        physical = {n: f"{n}_{rid}" for n in self.timed} | self._physical

        def job() -> pa.Table:
            try:
                backend = ibis.duckdb.from_connection(cur)
                tables = {n: backend.table(v) for n, v in physical.items()}
                return rule.execute(tables).alerts
            finally:
                cur.execute("COMMIT")
                cur.close()

        return job

    def run(
        self, rule: Rule, cut_us: int, from_us: int | None = None, until_us: int | None = None
    ) -> pa.Table:
        """``rule``'s alerts on the events after ``cut_us``; hits before ``from_us`` and alerts decided
        after ``until_us`` may be left out (``rules.intermediates.decide_from``; None: none is)."""
        from market_surveillance.alerts import finalize_alerts

        self._refresh_bars()
        rid = rule.rule_id.lower()
        self.con.execute(f"SET VARIABLE ms_cut_{rid} = {int(cut_us)}::BIGINT")
        self.con.execute(
            f"SET VARIABLE ms_from_{rid} = {int(cut_us if from_us is None else from_us)}::BIGINT"
        )
        self.con.execute(
            f"SET VARIABLE ms_until_{rid} = {2**62 if until_us is None else int(until_us)}::BIGINT"
        )
        sql = self._sql.get(rule.rule_id)
        if sql is None:
            return rule.execute(self._tables[rule.rule_id]).alerts
        raw = self.con.sql(sql).to_arrow_table()
        return finalize_alerts(rule, raw)


# ---------------------------------------------------------------------------------------------
# Sources: a file/folder replayed, or a folder tailed for new parts
# ---------------------------------------------------------------------------------------------


def _with_ts_us(name: str, tab: pa.Table) -> pa.Table:
    tab = conform(name, tab)
    tab = tab.append_column("ts_us", tab["ts"].cast(pa.int64()))
    return tab.sort_by([("ts_us", "ascending"), (ORDER_KEY[name], "ascending")])


def read_any(path: Path, fmt: str, *, date: str | None = None) -> dict[str, pa.Table]:
    """A source as canonical Arrow tables through the adapters' dispatch (every ``detect`` format)."""
    from market_surveillance.io.adapters import read_source

    tables, _ = read_source(path, fmt, date=date)
    return tables


def _canonical_part(path: Path, table: str, known: pa.Array | None = None) -> dict[str, pa.Table]:
    """One new canonical part file (``trades-0007.parquet``), validated like a whole folder would be, except
    that a fill or cancel of an order in ``known`` (submitted in an earlier part) is no lifecycle error."""
    import dataclasses
    from contextlib import nullcontext

    from market_surveillance.schema import known_orders

    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / f"{table}{path.suffix.lower()}"
        os.symlink(path.resolve(), link)
        try:
            with known_orders(known) if known is not None else nullcontext():
                return read_any(Path(tmp), "canonical")
        except SchemaError as exc:  # name the part the user wrote, not our link to it
            named = [dataclasses.replace(p, file=p.file.replace(str(link), str(path))) for p in exc.problems]
            raise SchemaError(named) from None
        except InputError as exc:
            raise InputError(str(exc).replace(str(link), str(path))) from None


class OpenOrders:
    """Orders submitted in the parts read so far that may still get a fill or cancel: ``new`` minus those
    cancelled or filled in full. Bounded by the venue's resting orders, not by the length of the stream."""

    def __init__(self) -> None:
        self.left = pa.table({"order_id": pa.array([], pa.string()), "left": pa.array([], pa.float64())})

    def ids(self) -> pa.Array:
        return self.left["order_id"].combine_chunks()

    def update(self, orders: pa.Table) -> None:
        ev = orders["event"]
        qty = orders["qty"].cast(pa.float64()).fill_null(0.0)
        # a new adds its size, a fill takes its size off, a cancel closes the order whatever is left
        delta = pc.if_else(
            pc.equal(ev, "new"),
            qty,
            pc.if_else(pc.equal(ev, "fill"), pc.negate(qty), pa.scalar(-math.inf)),
        )
        moves = pa.table({"order_id": orders["order_id"].cast(pa.string()), "left": delta})
        both = pa.concat_tables([self.left, moves]).group_by("order_id").aggregate([("left", "sum")])
        both = both.rename_columns(["order_id", "left"])
        self.left = both.filter(pc.greater(both["left"], 1e-12))


@dataclass
class Part:
    """Canonical tables read from one file (or the whole replayed source)."""

    name: str
    tables: dict[str, pa.Table]


class FolderTail:
    """New Parquet/CSV files landing in a folder, each yielded once, when its size has stopped changing.

    Canonical folders: a file whose name starts with ``trades`` or ``orders`` is a part of that table; the
    static tables (accounts, network, positions, assets) are read at start. Other formats: every file is a
    part in that format. Names starting with ``.`` or ``_`` and ``*.tmp`` files are in-flight and ignored.
    """

    def __init__(
        self,
        folder: Path,
        fmt: str,
        *,
        date: str | None = None,
        seen: Sequence[str] = (),
        keep_going: bool = False,
    ):
        self.folder, self.fmt, self.date = folder, fmt, date
        self.seen = set(seen)
        self._sizes: dict[str, int] = {}
        self.open_orders = OpenOrders()
        #: parts refused by validation (name, problems); with ``keep_going`` False the first one raises
        self.rejected: list[tuple[str, str]] = []
        self.keep_going = keep_going
        self.unsettled = 0

    def _table_of(self, p: Path) -> str | None:
        if self.fmt != "canonical":
            return "any"
        for name in TIMED:
            if p.name.lower().startswith(name):
                return name
        return None

    def poll(self) -> list[Part]:
        parts: list[Part] = []
        #: files seen in this poll whose size is not yet confirmed: activity, not idleness
        self.unsettled = 0
        for p in sorted(self.folder.iterdir()):
            if (
                not p.is_file()
                or p.name in self.seen
                or p.name.startswith((".", "_"))
                or p.suffix.lower() not in (".parquet", ".csv")
            ):
                continue
            table = self._table_of(p)
            if table is None:
                continue
            size = p.stat().st_size
            if self._sizes.get(p.name) != size:  # still being written: look again next poll
                self._sizes[p.name] = size
                self.unsettled += 1
                continue
            self.seen.add(p.name)
            try:
                if self.fmt != "canonical":
                    tables = read_any(p, self.fmt, date=self.date)
                elif table == "orders":
                    tables = _canonical_part(p, table, self.open_orders.ids())
                    self.open_orders.update(tables["orders"])
                else:
                    tables = _canonical_part(p, table)
            except (SchemaError, InputError) as exc:
                # a live desk keeps watching: the bad part is refused whole, named and counted, and can
                # be dropped in again corrected under a new name
                if not self.keep_going:
                    raise
                self.rejected.append((p.name, str(exc)))
                print(f"rejected part {p}: {one_line(exc)}", file=sys.stderr, flush=True)
                continue
            parts.append(Part(p.name, tables))
        return parts


def static_tables(folder: Path) -> dict[str, pa.Table]:
    """The static canonical tables of a folder (validated), for live mode."""
    from market_surveillance.schema import find_table_file

    out: dict[str, pa.Table] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in STATIC:
            f = find_table_file(folder, name)
            if f is not None:
                os.symlink(f.resolve(), Path(tmp) / f.name)
        if any(Path(tmp).iterdir()):
            out = read_any(Path(tmp), "canonical")
    return out


# ---------------------------------------------------------------------------------------------
# Sinks: the out file and the store, written after every batch that decided something
# ---------------------------------------------------------------------------------------------


class OutFile:
    """All alerts of the stream in one file, replaced atomically (write to a temp file, then rename)."""

    def __init__(self, path: Path):
        self.path = path
        self.alerts: dict[str, dict[str, Any]] = {}

    def load(self) -> tuple[pa.Table, int | None]:
        if not self.path.exists():
            return ALERT_SCHEMA.empty_table(), None
        import pyarrow.parquet as pq

        tab = read_alerts(self.path)
        wm = None
        if self.path.suffix != ".csv":
            meta = pq.read_schema(self.path).metadata or {}
            raw = meta.get(b"ms_watermark_us")
            wm = int(raw) if raw else None
        return tab, wm

    def write(self, changed: Sequence[Mapping[str, Any]], watermark: int) -> None:
        for r in changed:
            self.alerts[r["alert_id"]] = dict(r)
        tab = rows_to_alerts(
            sorted(self.alerts.values(), key=lambda r: (_us(r["window_start"]), r["alert_id"]))
        )
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        if self.path.suffix == ".csv":
            write_alerts(tab, tmp.with_suffix(".csv"))
            os.replace(tmp.with_suffix(".csv"), self.path)
        else:
            import pyarrow.parquet as pq

            tab = tab.replace_schema_metadata({"ms_watermark_us": str(watermark)})
            self.path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(tab, tmp)
            os.replace(tmp, self.path)


# ---------------------------------------------------------------------------------------------
# The driver
# ---------------------------------------------------------------------------------------------


@dataclass
class _Detached:
    """A rule's run on a pinned snapshot at event time ``now``, in the worker thread."""

    state: OnlineState
    rule: Rule
    now: int
    span: int
    future: Future[pa.Table]

    @property
    def decided_before(self) -> int:
        """Decisions of this rule are taken up to the batch before this snapshot's."""
        return self.now - self.span

    def done(self) -> bool:
        return self.future.done()

    def reconcile(self) -> list[dict[str, Any]]:
        return self.state.reconcile(self.rule, self.future.result(), self.now, self.span)


@dataclass
class BatchStats:
    """One micro-batch: its event-time end, events, alerts raised/continued and wall seconds."""

    now_us: int
    events: int
    raised: int
    continued: int
    seconds: float
    buffered: int
    rule_seconds: dict[str, float] = field(default_factory=dict)
    #: wall seconds of the work outside the rules: ``append``, ``norms``, ``prune``, ``sinks``
    phase_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class WatchResult:
    batches: list[BatchStats] = field(default_factory=list)
    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    late_events: int = 0
    #: live mode: parts refused by validation, (file name, problems)
    rejected_parts: list[tuple[str, str]] = field(default_factory=list)
    resumed_from: int | None = None
    stopped: str = "end of data"
    #: wall seconds the end of a replay waited for its detached jobs after the last batch (final flush)
    flush_seconds: float = 0.0

    @property
    def events(self) -> int:
        return sum(b.events for b in self.batches)

    def alert_table(self) -> pa.Table:
        return rows_to_alerts(
            sorted(self.alerts.values(), key=lambda r: (_us(r["window_start"]), r["alert_id"]))
        )


class _Stop:
    """SIGINT/SIGTERM set a flag checked between batches (a second Ctrl-C interrupts at once)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _Stop:
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _events_until(
    pending: dict[str, pa.Table], end_us: int
) -> tuple[dict[str, pa.Table], dict[str, pa.Table]]:
    """Split each pending table at ``end_us`` (inclusive) → (batch, rest); tables are sorted by ts_us."""
    batch, rest = {}, {}
    for name, tab in pending.items():
        n = int(np.searchsorted(tab["ts_us"].to_numpy(), end_us, side="right")) if tab.num_rows else 0
        batch[name], rest[name] = tab.slice(0, n), tab.slice(n)
    return batch, rest


def _first_ts(pending: Mapping[str, pa.Table]) -> int | None:
    firsts = [t["ts_us"][0].as_py() for t in pending.values() if t.num_rows]
    return min(firsts) if firsts else None


def _merge(pending: dict[str, pa.Table], part: Mapping[str, pa.Table]) -> dict[str, pa.Table]:
    out = dict(pending)
    for name in TIMED:
        if name in part:
            new = _with_ts_us(name, part[name])
            if name in out and out[name].num_rows:
                new = pa.concat_tables([out[name], new]).sort_by(
                    [("ts_us", "ascending"), (ORDER_KEY[name], "ascending")]
                )
            out[name] = new
    return out


def watch(
    data: str | Path,
    rules: list[Rule],
    *,
    fmt: str = "canonical",
    date: str | None = None,
    step: str | float = "5s",
    speed: float | None = None,
    max_batch_events: int = 200_000,
    follow: bool = False,
    poll_s: float = 1.0,
    idle_timeout_s: float | None = None,
    out: str | Path | None = None,
    db: str | None = None,
    config_path: str | Path | None = None,
    on_batch: Callable[[BatchStats, list[dict[str, Any]]], None] | None = None,
) -> WatchResult:
    """Watch a source: micro-batches in event-time order through ``rules``; alerts to ``out`` and ``db``.

    Parameters
    ----------
    data, fmt, date
        A file or folder in any ``detect`` format (``date``: LOBSTER trading day).
    step
        Micro-batch boundary in event time (``5s``). At ``speed`` None (as fast as possible) consecutive
        steps are coalesced up to ``max_batch_events`` events per batch; at ``speed`` N one step is one
        batch, paced at N× real time.
    follow
        Live mode: after what is there, keep polling the folder every ``poll_s`` for new parts; stop on
        Ctrl-C/SIGTERM (or after ``idle_timeout_s`` without a new part, for tests and batch jobs).
    out, db
        Alerts file (Parquet, or CSV) and store URL. A restart resumes from the store's watermark (else
        from the out file's), re-reading the trailing data before it as context only.
    """
    data = Path(data)
    step_us = int(parse_duration(step) * US)
    stream_key = f"watch:{data.resolve()}"
    result = WatchResult()
    state = OnlineState(rules, step_us)

    # -- the initial data and the live tail --------------------------------------------------------
    tail: FolderTail | None = None
    if follow:
        if not data.is_dir():
            raise ValueError(f"{data}: --follow tails a folder; give the folder new parts land in")
        static = static_tables(data) if fmt == "canonical" else {}
        tail = FolderTail(data, fmt, date=date, keep_going=True)
        first_parts = tail.poll() or []
        # files present at start are complete: take them without waiting a poll for stable sizes
        first_parts += tail.poll()
        parts = first_parts
    else:
        whole = read_any(data, fmt, date=date)
        static = {k: conform(k, v) for k, v in whole.items() if k in STATIC}
        parts = [Part(str(data), {k: v for k, v in whole.items() if k in TIMED})]
    pending: dict[str, pa.Table] = {}
    for part in parts:
        pending = _merge(pending, part.tables)
    static = {k: conform(k, v) for k, v in static.items()}
    schemas = {
        name: _with_ts_us(name, conform(name, TABLES[name].arrow_schema.empty_table())).schema
        for name in TIMED
    }
    if "orders" not in pending and (fmt != "canonical" or not follow):
        schemas.pop("orders")  # trade-only sources (ccxt, tardis, binance)
    if "book" not in pending:
        schemas.pop("book")  # level (L2) changes come only from Tardis book files
    profile = _profile(pending, static, schemas)
    runnable = [r for r in rules if r.skip_reason(profile) is None]
    state.rules = runnable
    buffer = DuckDBBuffer(static, schemas, runnable)

    def keep_us(span: int) -> int:
        """Trailing event time the buffer keeps: the longest rule horizon, and the norms' window."""
        return max(state.max_horizon_us(span), NORMS_S * US if buffer.shared else 0)

    # -- resume ------------------------------------------------------------------------------------
    sink_out = OutFile(Path(out)) if out is not None else None
    store_sink = _StoreSink(db, stream_key, runnable, config_path) if db is not None else None
    prior, watermark = ALERT_SCHEMA.empty_table(), None
    if store_sink is not None:
        prior, watermark = store_sink.resume()
    elif sink_out is not None:
        prior, watermark = sink_out.load()
    if sink_out is not None:
        for r in prior.to_pylist():
            sink_out.alerts[r["alert_id"]] = r
    for r in prior.to_pylist():
        result.alerts[r["alert_id"]] = r
    if watermark is not None:
        result.resumed_from = watermark
        state.restore(prior, watermark)
        context_from = watermark - keep_us(0)
        batch, pending = _events_until(pending, watermark)
        for name, tab in batch.items():
            tab = tab.filter(pc.greater(tab["ts_us"], context_from))
            buffer.append(name, tab)

    # -- the loop ----------------------------------------------------------------------------------
    wall0, ev0 = time.perf_counter(), None
    last_part = time.monotonic()
    draining = False
    last_eval: dict[str, int] = {}
    # jobs of the rules run off the micro-batch path, in submission order (one worker: they finish in order)
    detached: list[_Detached] = []
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ms-detached")

    def pending_has_more(p: Mapping[str, pa.Table]) -> bool:
        # the last batch of a replay evaluates every rule (the day's decisions are complete)
        return tail is not None or any(t.num_rows for t in p.values())

    try:
        with _Stop() as stop:
            while True:
                if stop.requested:
                    result.stopped = "interrupted"
                    break
                first = _first_ts(pending)
                if first is None:
                    if tail is None:
                        break
                    if draining:
                        result.stopped = "idle"
                        break
                    new = tail.poll()
                    if tail.unsettled:
                        last_part = time.monotonic()
                    if not new:
                        if idle_timeout_s is not None and time.monotonic() - last_part > idle_timeout_s:
                            result.stopped = "idle"
                            break
                        time.sleep(poll_s)
                        continue
                    last_part = time.monotonic()
                    for part in new:
                        if state.watermark is not None:
                            result.late_events += _late(part.tables, state.watermark, buffer)
                        pending = _merge(pending, _after(part.tables, state.watermark))
                    continue
                start = state.watermark if state.watermark is not None else (first // step_us) * step_us
                now = max(start + step_us, ((first // step_us) + 1) * step_us)
                if tail is not None and not draining and _first_after(pending, now) is None:
                    # live: a step is decided once data beyond it has arrived (its parts may still land)
                    new = tail.poll()
                    if new or tail.unsettled:
                        last_part = time.monotonic()
                    if new:
                        for part in new:
                            result.late_events += (
                                _late(part.tables, state.watermark, buffer)
                                if (state.watermark is not None)
                                else 0
                            )
                            pending = _merge(pending, _after(part.tables, state.watermark))
                        continue
                    if idle_timeout_s is not None and time.monotonic() - last_part > idle_timeout_s:
                        draining = True
                        continue
                    if stop.requested:
                        continue
                    time.sleep(poll_s)
                    continue
                # a batch's decisions read the norms of the last refresh boundary before its first event:
                # coalesced steps stop at the next boundary, so no decision reads norms built after it
                norms_us = NORMS_EVERY_S * US
                norms_cap = ((first // norms_us) + 1) * norms_us if buffer.shared else None
                if speed is None:
                    # coalesce steps up to max_batch_events
                    counts = _count_until(pending, now)
                    while counts < max_batch_events:
                        nxt = _next_boundary(pending, now, step_us)
                        if nxt is None or (norms_cap is not None and nxt > norms_cap):
                            break
                        if tail is not None and not draining and _first_after(pending, nxt) is None:
                            break  # live: the step holding the last event may still be filling
                        c = _count_until(pending, nxt)
                        if c > max_batch_events and counts > 0:
                            break
                        now, counts = nxt, c
                t0 = time.perf_counter()
                batch, pending = _events_until(pending, now)
                n_events = sum(t.num_rows for t in batch.values())
                for name, tab in batch.items():
                    if name in buffer.timed:
                        buffer.append(name, tab)
                span = now - start
                t_norms = time.perf_counter()
                buffer.refresh_norms(first, now, norms_us)
                phases = {"append": t_norms - t0, "norms": time.perf_counter() - t_norms}
                changed: list[dict[str, Any]] = []
                rule_seconds: dict[str, float] = {}
                raised = continued = 0
                while detached and detached[0].done():
                    changed.extend(detached.pop(0).reconcile())
                for rule in runnable:
                    every = int(rule.online_every_s * US)
                    if pending_has_more(pending) and every and now < last_eval.get(rule.rule_id, 0) + every:
                        continue
                    if pending_has_more(pending) and not rule.online_due(start, now):
                        if not every:
                            # nothing of this rule could be decided in (start, now]: as good as evaluated,
                            # so its next evaluation reads back only to here (decide_from_us)
                            last_eval[rule.rule_id] = now
                        continue
                    previous = last_eval.get(rule.rule_id)
                    last_eval[rule.rule_id] = now
                    cut = now - state.horizon_us(rule, span)
                    t_rule = time.perf_counter()
                    if every:
                        # slow, rarely due rules (ML) run off the micro-batch path on a pinned snapshot; one
                        # job per rule at a time, so a slow model holds the stream back instead of piling up.
                        # The last batch of a replay queues its job behind the running one without waiting:
                        # both land in the final flush, after the last batch
                        while pending_has_more(pending) and any(d.rule is rule for d in detached):
                            changed.extend(detached.pop(0).reconcile())
                        detached.append(_Detached(state, rule, now, span, pool.submit(buffer.detach(rule, cut))))
                    else:
                        alerts = buffer.run(rule, cut, state.decide_from_us(rule, now, span, previous), now)
                        changed.extend(state.reconcile(rule, alerts, now, span))
                    rule_seconds[rule.rule_id] = time.perf_counter() - t_rule
                for r in changed:
                    if r["alert_id"] in result.alerts:
                        continued += 1
                    else:
                        raised += 1
                    result.alerts[r["alert_id"]] = r
                state.watermark = now
                # the watermark on record: every decision up to it is taken, detached ones included
                durable = min([now] + [d.decided_before for d in detached])
                t_prune = time.perf_counter()
                buffer.prune(now - keep_us(span))
                t_sinks = time.perf_counter()
                phases["prune"] = t_sinks - t_prune
                if changed or (store_sink is not None and not result.batches):
                    if store_sink is not None:
                        store_sink.write(changed, durable)
                    if sink_out is not None:
                        sink_out.write(changed, durable)
                elif store_sink is not None:
                    store_sink.advance(durable)
                phases["sinks"] = time.perf_counter() - t_sinks
                stats = BatchStats(
                    now, n_events, raised, continued, time.perf_counter() - t0, buffer.rows(), rule_seconds, phases
                )
                result.batches.append(stats)
                # the idle timeout counts time spent waiting for parts, not the watcher's own work: parts
                # that landed while a long batch ran are only confirmed (size stable) on later polls
                last_part = time.monotonic()
                if on_batch is not None:
                    on_batch(stats, changed)
                if speed is not None:
                    if ev0 is None:
                        ev0 = now - step_us
                    due = wall0 + (now - ev0) / US / speed
                    pause = due - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
            if result.stopped == "end of data" and detached and state.watermark is not None:
                # the final flush: the replay's decisions are complete once the detached jobs queued by its
                # last batches end; their alerts carry their own detected_at (the snapshot's event time)
                t0 = time.perf_counter()
                changed = []
                while detached:
                    changed.extend(detached.pop(0).reconcile())
                raised = sum(r["alert_id"] not in result.alerts for r in changed)
                for r in changed:
                    result.alerts[r["alert_id"]] = r
                if store_sink is not None:
                    store_sink.write(changed, state.watermark)
                if sink_out is not None:
                    sink_out.write(changed, state.watermark)
                result.flush_seconds = time.perf_counter() - t0
                if on_batch is not None and changed:
                    on_batch(
                        BatchStats(
                            state.watermark, 0, raised, len(changed) - raised, result.flush_seconds, buffer.rows()
                        ),
                        changed,
                    )
    finally:
        if tail is not None:
            result.rejected_parts = list(tail.rejected)
        for d in detached:  # interrupted: the pinned snapshots are released, their alerts not raised
            d.future.cancel()
        pool.shutdown(wait=True)
        if store_sink is not None:
            store_sink.finish(result.stopped)
    if sink_out is not None and state.watermark is not None:
        sink_out.write([], min([state.watermark] + [d.decided_before for d in detached]))
    return result


def _profile(
    pending: Mapping[str, pa.Table], static: Mapping[str, pa.Table], schemas: Mapping[str, Any]
) -> DataProfile:
    tables = frozenset(schemas) | frozenset(static)

    def has(name: str, cols: Sequence[str]) -> bool:
        tab = pending.get(name)
        if tab is None or tab.num_rows == 0:
            return (
                True  # nothing seen yet: assume the feed carries them (rules on empty input return nothing)
            )
        return any(tab[c].null_count < tab.num_rows for c in cols)

    return DataProfile(
        tables,
        has_trade_accounts=has("trades", ["buyer_id", "seller_id"]),
        has_order_accounts=has("orders", ["account_id"]),
    )


def _count_until(pending: Mapping[str, pa.Table], end_us: int) -> int:
    return sum(
        int(np.searchsorted(t["ts_us"].to_numpy(), end_us, side="right"))
        for t in pending.values()
        if t.num_rows
    )


def _first_after(pending: Mapping[str, pa.Table], end_us: int) -> int | None:
    out = None
    for t in pending.values():
        ts = t["ts_us"].to_numpy()
        i = int(np.searchsorted(ts, end_us, side="right"))
        if i < len(ts):
            out = int(ts[i]) if out is None else min(out, int(ts[i]))
    return out


def _next_boundary(pending: Mapping[str, pa.Table], now: int, step_us: int) -> int | None:
    nxt = _first_after(pending, now)
    return None if nxt is None else ((nxt // step_us) + 1) * step_us


def _after(tables: Mapping[str, pa.Table], watermark: int | None) -> dict[str, pa.Table]:
    if watermark is None:
        return dict(tables)
    out = {}
    for name, tab in tables.items():
        if name in TIMED:
            ts = conform(name, tab)["ts"].cast(pa.int64())
            out[name] = tab.filter(pc.greater(ts, watermark))
    return out


def _late(tables: Mapping[str, pa.Table], watermark: int, buffer: DuckDBBuffer) -> int:
    """Events at or before the watermark: kept as context for later decisions, never re-decided."""
    n = 0
    for name, tab in tables.items():
        if name in TIMED:
            t = _with_ts_us(name, tab)
            late = t.filter(pc.less_equal(t["ts_us"], watermark))
            if name in buffer.timed:
                buffer.append(name, late)
            n += late.num_rows
    return n


class _StoreSink:
    """Alerts and the watermark in the store, committed together after each batch (see store.watch)."""

    def __init__(self, url: str, stream_key: str, rules: list[Rule], config_path: str | Path | None):
        from market_surveillance.store.core import Store
        from market_surveillance.store.detection import config_hash, rule_versions
        from market_surveillance.store.watch import start_watch

        self.store = Store.open(url)
        self.key = stream_key
        self.run_id = start_watch(
            self.store, stream_key, config_hash=config_hash(config_path), rule_versions=rule_versions(rules)
        )

    def resume(self) -> tuple[pa.Table, int | None]:
        from market_surveillance.store.watch import resume_point

        return resume_point(self.store, self.key, exclude_run=self.run_id)

    def write(self, changed: Sequence[Mapping[str, Any]], watermark: int) -> None:
        from market_surveillance.store.watch import record_batch

        record_batch(self.store, self.run_id, rows_to_alerts(changed), watermark)

    def advance(self, watermark: int) -> None:
        self.write([], watermark)

    def finish(self, stopped: str) -> None:
        from market_surveillance.store.watch import finish_watch

        try:
            finish_watch(self.store, self.run_id, stopped)
        finally:
            self.store.dispose()


__all__ = [
    "BatchStats",
    "DuckDBBuffer",
    "FolderTail",
    "OnlineState",
    "WatchResult",
    "parse_duration",
    "watch",
]
