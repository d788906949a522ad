"""Builders of small canonical tables for tests and examples (defaults fill unspecified columns)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from market_surveillance.schema import TABLES, conform

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def at(seconds: float) -> dt.datetime:
    """A UTC timestamp ``seconds`` after the fixed test epoch :data:`T0`."""
    return T0 + dt.timedelta(seconds=seconds)


_DEFAULTS: dict[str, dict[str, Any]] = {
    "trades": {
        "venue": "EXA",
        "asset": "BTC-USD",
        "price": 100.0,
        "qty": 1.0,
        "buyer_id": "buyer",
        "seller_id": "seller",
        "aggressor": "buy",
        "buy_order_id": None,
        "sell_order_id": None,
        "scenario_id": None,
    },
    "orders": {
        "venue": "EXA",
        "asset": "BTC-USD",
        "account_id": "acct",
        "event": "new",
        "side": "buy",
        "price": 100.0,
        "qty": 1.0,
        "scenario_id": None,
    },
    "accounts": {"segment": "retail", "baseline_hourly_notional": 1000.0},
    "network": {},
    "positions": {"as_of": at(86_400)},
    "assets": {"float_qty": 1_000_000.0},
    "labels": {"venue": None, "accounts": []},
}
_IDS = {"trades": ("trade_id", "T"), "orders": ("event_id", "E")}


def make_table(name: str, rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """A canonical table from row dicts; ``ts`` may be given as seconds after :data:`T0`."""
    rows = list(rows)
    spec = TABLES[name]
    cols: dict[str, list[Any]] = {c.name: [] for c in spec.all_columns}
    for i, row in enumerate(rows):
        full = {**_DEFAULTS[name], **row}
        if name in _IDS and _IDS[name][0] not in full:
            full[_IDS[name][0]] = f"{_IDS[name][1]}{i:06d}"
        for key in ("ts", "as_of", "start_ts", "end_ts"):
            if isinstance(full.get(key), int | float):
                full[key] = at(full[key])
        for c in cols:
            cols[c].append(full.get(c))
    arrays = {c: pa.array(v, type=spec.column(c).type) for c, v in cols.items()}
    return conform(name, arrays)


def trades(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    return make_table("trades", rows)


def orders(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    return make_table("orders", rows)
