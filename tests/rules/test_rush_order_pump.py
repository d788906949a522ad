from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.rush_order_pump import RushOrderPump, RushOrderPumpParams
from market_surveillance.testing import at, trades

PUMP_AT = 8 * 3600


def _background(
    hours: int = 9, every_s: int = 60, price: float = 100.0, asset: str = "BTC-USD"
) -> list[dict]:
    # one print a minute at a flat price: 25/60 ≈ 0.42 trades per 25 s chunk
    return [
        {"ts": every_s * i + 7, "price": price, "aggressor": "buy" if i % 2 else "sell", "asset": asset}
        for i in range(hours * 3600 // every_s)
    ]


def _rush(
    n: int = 30,
    over_s: float = 20.0,
    rise: float = 0.10,
    buy_every: int = 1,
    price: float = 100.0,
    asset: str = "BTC-USD",
    start: float = PUMP_AT,
) -> list[dict]:
    # the crowd's market buy orders, n prints over `over_s` seconds, ramping the price by `rise`
    return [
        {
            "ts": start + i * over_s / n,
            "price": price * (1 + rise * i / max(n - 1, 1)),
            "aggressor": "buy" if i % buy_every == 0 else "sell",
            "asset": asset,
        }
        for i in range(n)
    ]


def _run(rows, params=None):
    _, t, _ = from_arrow({"trades": trades(rows)})
    return RushOrderPump(params).run(t)


def _first_decision(rows: list[dict], p: RushOrderPumpParams | None = None) -> float:
    p = p or RushOrderPumpParams()
    rows = sorted(rows, key=lambda r: r["ts"])
    for r in rows:
        t = r["ts"]
        chunk = [x for x in rows if t - p.chunk_s <= x["ts"] <= t]
        base = [x for x in rows if t - p.baseline_s - p.chunk_s <= x["ts"] <= t]
        rate = max((len(base) - len(chunk)) / (p.baseline_s / p.chunk_s), p.chunk_s / p.baseline_s)
        buys = sum(x["aggressor"] == "buy" for x in chunk)
        notional = sum(x["price"] * x.get("qty", 1.0) for x in chunk)
        buy_notional = sum(x["price"] * x.get("qty", 1.0) for x in chunk if x["aggressor"] == "buy")
        low = min(x["price"] for x in rows if t - p.rise_s <= x["ts"] <= t)
        if (
            t - rows[0]["ts"] >= p.warmup_s
            and len(chunk) / rate >= p.min_ratio
            and buys >= p.min_rush
            and buy_notional >= p.min_buy_share * notional
            and r["price"] / low - 1 >= p.min_rise_pct / 100
        ):
            return t
    raise AssertionError("no decision")


def test_rush_order_pump_injected_found_seconds_after_onset():
    rush = _rush()
    out = _run(_background() + rush)
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "BTC-USD" and row["accounts"] == []
    # decided at the first print where every condition holds (checked here row by row, the slow way)
    assert row["detected_at"] == at(_first_decision(_background() + rush)) == row["window_start"]
    assert row["detected_at"] - at(PUMP_AT) < (at(25) - at(0))
    assert "buy orders within 25 s" in row["explanation"]


def test_rush_order_pump_clean_background_no_alert():
    assert _run(_background()).num_rows == 0


def test_rush_order_pump_just_under_thresholds_no_alert():
    p = RushOrderPumpParams()
    # one buy short of the rush floor
    assert _run(_background() + _rush(n=p.min_rush - 1)).num_rows == 0
    # the price rises just under min_rise_pct
    assert _run(_background() + _rush(rise=p.min_rise_pct / 100 * 0.95)).num_rows == 0
    # a burst of selling is no pump
    assert _run(_background() + _rush(buy_every=3)).num_rows == 0


def _answered_rush(buy_qty: float, sell_qty: float) -> list[dict]:
    # the crowd's 30 buys over 20 s, each answered by two sells (sellers splitting into many small prints)
    rush = [r | {"qty": buy_qty} for r in _rush()]
    sells = [
        {"ts": r["ts"] + 0.1 * k, "price": r["price"], "aggressor": "sell", "qty": sell_qty, "asset": "BTC-USD"}
        for r in rush
        for k in (1, 2)
    ]
    return rush + sells


def test_rush_order_pump_buy_share_by_notional_counts_money_not_prints():
    # sells outnumber buys two to one but move a fifth of the buyers' money: still a buying rush
    rows = _background() + _answered_rush(buy_qty=5.0, sell_qty=0.5)
    out = _run(rows)
    assert out.num_rows == 1
    assert out["detected_at"][0].as_py() == at(_first_decision(rows))
    # the same prints with the money on the sell side: no pump
    assert _run(_background() + _answered_rush(buy_qty=0.5, sell_qty=5.0)).num_rows == 0


def test_rush_order_pump_before_warmup_no_alert():
    rows = [r for r in _background() if r["ts"] > PUMP_AT - 1800] + _rush()
    assert _run(rows).num_rows == 0


def test_rush_order_pump_busier_asset_needs_a_bigger_rush():
    # a liquid asset trading every 2 s (12.5 per chunk): 30 prints in 20 s are its normal pace, not a rush
    busy = _background(every_s=2, price=50_000.0, asset="ETH-USD")
    assert _run(busy + _rush(price=50_000.0, asset="ETH-USD")).num_rows == 0
    # relative to its own rate the same coin does fire on a rush 60x its norm
    big = _rush(n=800, over_s=20, price=50_000.0, asset="ETH-USD")
    out = _run(busy + big)
    assert out.num_rows == 1 and out["asset"][0].as_py() == "ETH-USD"


def test_rush_order_pump_sensitive_vs_default_params():
    rows = _background() + _rush(n=8)
    assert _run(rows).num_rows == 0
    assert _run(rows, RushOrderPumpParams(min_rush=6, min_ratio=15.0)).num_rows == 1


def test_rush_order_pump_what_follows_changes_nothing():
    rush = _rush()
    dump = [
        {"ts": PUMP_AT + 60 + i, "price": 95.0, "aggressor": "sell", "asset": "BTC-USD"} for i in range(40)
    ]
    a, b = _run(_background() + rush), _run(_background() + rush + dump)
    assert a["alert_id"].to_pylist() == b["alert_id"].to_pylist()
    assert a["detected_at"].to_pylist() == b["detected_at"].to_pylist()


@settings(max_examples=4, deadline=None)
@given(st.randoms(use_true_random=False))
def test_rush_order_pump_row_order_invariant(rnd):
    rows = _background() + _rush()
    ids = {id(r): f"T{i:05d}" for i, r in enumerate(rows)}
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    a = _run([r | {"trade_id": ids[id(r)]} for r in rows])
    b = _run([r | {"trade_id": ids[id(r)]} for r in shuffled])
    assert a["alert_id"].to_pylist() == b["alert_id"].to_pylist()
    assert a["detected_at"].to_pylist() == b["detected_at"].to_pylist()
