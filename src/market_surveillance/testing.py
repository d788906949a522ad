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


def mini_dataset() -> dict[str, pa.Table]:
    """A tiny but complete canonical dataset (every table) with a little of everything."""
    tr = [
        {
            "ts": 60 * i,
            "price": 100.0 + (i % 5),
            "qty": 1.0 + i % 3,
            "buyer_id": f"a{i % 4}",
            "seller_id": f"a{(i + 1) % 4}",
        }
        for i in range(40)
    ]
    tr.append({"ts": 2_500, "buyer_id": "a0", "seller_id": "a0"})
    od = []
    for i in range(20):
        oid = f"o{i}"
        od.append(
            {"ts": 30 * i, "order_id": oid, "account_id": f"a{i % 4}", "side": "buy" if i % 2 else "sell"}
        )
        od.append(
            {
                "ts": 30 * i + 2,
                "order_id": oid,
                "account_id": f"a{i % 4}",
                "event": "cancel",
                "side": "buy" if i % 2 else "sell",
            }
        )
    return {
        "trades": make_table("trades", tr),
        "orders": make_table("orders", od),
        "accounts": make_table("accounts", [{"account_id": f"a{i}"} for i in range(4)]),
        "network": make_table(
            "network",
            [{"account_id": f"a{i}", "device_id": f"d{i}", "ip_subnet": f"10.0.{i}.0/24"} for i in range(4)],
        ),
        "positions": make_table(
            "positions", [{"account_id": f"a{i}", "asset": "BTC-USD", "net_qty": float(i)} for i in range(4)]
        ),
        "assets": make_table("assets", [{"asset": "BTC-USD"}]),
    }


def empty_dataset() -> dict[str, pa.Table]:
    """Every canonical table, empty."""
    return {
        name: make_table(name, [])
        for name in ("trades", "orders", "accounts", "network", "positions", "assets")
    }


def golden_line(row: dict) -> str:
    """One alert as a line a reviewer can check by eye, like pylint's functional ``.txt`` expectations:
    ``MS011 layering BTC-USD EXA [acct-17] 2024-01-02 10:00:01→10:00:24 value=4`` (``-`` = no asset/venue;
    the end carries its date only when it differs from the start's)."""
    start, end = row["window_start"], row["window_end"]
    end_fmt = "%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S"
    accounts = ",".join(row["accounts"] or [])
    return (
        f"{row['rule_id']} {row['rule_name']} {row['asset'] or '-'} {row['venue'] or '-'} [{accounts}] "
        f"{start:%Y-%m-%d %H:%M:%S}→{end:{end_fmt}} value={row['value']:.4g}"
    )


def golden_alerts(seed: int = 7) -> list[str]:
    """The reference scenario's alert set: sorted :func:`golden_line` lines (seed 7, small, defaults).

    ``tests/golden/reference_alerts.txt`` holds it; regenerate with
    ``python -c "from market_surveillance.testing import golden_alerts as g; print(*g(), sep='\\n')"
    > tests/golden/reference_alerts.txt`` only when a change of the alert set is intended and explained.
    """
    from market_surveillance.io.canonical import from_arrow
    from market_surveillance.pipeline import run_rules
    from market_surveillance.rules.config import build_rules
    from market_surveillance.simulate import simulate

    data = simulate(seed, scale="small")
    _, tables, profile = from_arrow(data)
    alerts = run_rules(tables, profile, build_rules()).alerts
    return sorted(golden_line(r) for r in alerts.to_pylist())


def public_book_flow(
    seconds: int = 600,
    *,
    mid: float = 100.0,
    tick: float = 0.01,
    base_qty: float = 100.0,
    per_second: int = 4,
    venue: str = "EXA",
    asset: str = "BTC-USD",
    prefix: str = "bg",
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Account-free order flow of one instrument, like a public order-book feed: ``(orders, trades)`` rows.

    Each second ``per_second`` orders (sides alternating, 1-5 ticks from ``mid``, sizes ``base_qty`` × 1,
    1.5 or 2) rest 0.5-3 s and are cancelled; every second order of every second second is filled instead (at 1 tick from ``mid``),
    with its trade (aggressor opposite the resting order). No account ids anywhere.
    """
    od: list[dict[str, Any]] = []
    tr: list[dict[str, Any]] = []
    for s in range(seconds):
        for k in range(per_second):
            n = s * per_second + k
            side = "buy" if n % 2 == 0 else "sell"
            filled = k == 1 and s % 2 == 0
            dist = tick if filled else (1 + n % 5) * tick  # what trades rests at the touch
            price = round(mid - dist if side == "buy" else mid + dist, 10)
            qty = base_qty * (1.0, 1.5, 2.0)[n % 3]
            ts = s + k / per_second
            oid = f"{prefix}{n}"
            base = {"venue": venue, "asset": asset, "account_id": None, "order_id": oid, "side": side}
            od.append({**base, "ts": ts, "event": "new", "price": price, "qty": qty})
            end = ts + 0.5 + (n % 6) * 0.5
            if filled:
                od.append({**base, "ts": end, "event": "fill", "price": price, "qty": qty})
                tr.append(
                    {"ts": end, "venue": venue, "asset": asset, "price": price, "qty": qty,
                     "buyer_id": None, "seller_id": None, "aggressor": "sell" if side == "buy" else "buy",
                     "trade_id": f"{prefix}T{n}"}
                )  # fmt: skip
            else:
                od.append({**base, "ts": end, "event": "cancel", "price": price, "qty": qty})
    return od, tr


def lobster_orderbook_lines(
    messages: Iterable[str],
    levels: int,
    resting: Iterable[tuple[int, int, int, int]] = (),
) -> list[str]:
    """LOBSTER orderbook rows for message lines, from a plain per-order reconstruction (test fixtures).

    Independent of :mod:`market_surveillance.book` on purpose (a dict of live orders, no SQL), so a book
    check against its output tests that module. ``resting`` are ``(order_id, size, price, direction)`` of
    orders live before the first message; messages about unknown orders change nothing. Types 5-7 leave
    the book as it was, as LOBSTER documents.
    """
    live: dict[int, list[int]] = {oid: [size, price, d] for oid, size, price, d in resting}
    out: list[str] = []
    for line in messages:
        fields = line.lstrip("\ufeff").strip().split(",")
        typ, oid, size, price, d = (int(x) for x in fields[1:6])
        if typ == 1:
            live[oid] = [size, price, d]
        elif typ in (2, 4) and oid in live:
            live[oid][0] -= size
            if live[oid][0] <= 0:
                del live[oid]
        elif typ == 3:
            live.pop(oid, None)
        depth: dict[tuple[int, int], int] = {}
        for sz, px, dd in live.values():
            depth[(dd, px)] = depth.get((dd, px), 0) + sz
        asks = sorted((px, q) for (dd, px), q in depth.items() if dd == -1)
        bids = sorted(((px, q) for (dd, px), q in depth.items() if dd == 1), reverse=True)
        row: list[int] = []
        for k in range(levels):
            row += list(asks[k]) if k < len(asks) else [9_999_999_999, 0]
            row += list(bids[k]) if k < len(bids) else [-9_999_999_999, 0]
        out.append(",".join(map(str, row)))
    return out
