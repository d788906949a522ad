"""Order-book reconstruction: hand-made event sequences with known books, and a reference replay."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_surveillance import testing as tb
from market_surveillance.book import book_imbalance, book_levels, level_changes

US = 1_000_000


def _new(ts: float, oid: str, side: str, price: float, qty: float, **kw: object) -> dict:
    return {"ts": ts, "order_id": oid, "event": "new", "side": side, "price": price, "qty": qty, **kw}


def _ev(ts: float, oid: str, event: str, side: str, price: float, qty: float, **kw: object) -> dict:
    return {"ts": ts, "order_id": oid, "event": event, "side": side, "price": price, "qty": qty, **kw}


def _levels_at(tab, second: float, venue: str = "EXA") -> dict[str, list[tuple[float, float]]]:
    """{side: [(price, qty), ...] best first} at one sample time."""
    want = tb.at(second)
    out: dict[str, list[tuple[float, float]]] = {"buy": [], "sell": []}
    for r in tab.to_pylist():
        if r["ts"] == want and r["venue"] == venue:
            out[r["side"]].append((r["price"], r["qty"]))
    return out


# A small book: two bid levels (one with two orders), two ask levels, then a partial fill, a cancel
# and an aggressive buy that takes out the best ask and part of the next level (crossing levels).
BOOK_EVENTS = [
    _new(0, "b1", "buy", 99.0, 2.0),
    _new(0, "b2", "buy", 99.0, 1.0),
    _new(0, "b3", "buy", 98.0, 4.0),
    _new(0, "s1", "sell", 101.0, 3.0),
    _new(0, "s2", "sell", 102.0, 5.0),
    # t=1: partial fill of b1 (1 of 2) by an incoming sell
    _new(1, "x1", "sell", 99.0, 1.0),
    _ev(1, "x1", "fill", "sell", 99.0, 1.0),
    _ev(1, "b1", "fill", "buy", 99.0, 1.0),
    # t=2: b3 cancelled with its remaining qty
    _ev(2, "b3", "cancel", "buy", 98.0, 4.0),
    # t=3: aggressive buy 5 @ 102 fills s1 (3 @ 101) and 2 of s2 (@ 102)
    _new(3, "x2", "buy", 102.0, 5.0),
    _ev(3, "s1", "fill", "sell", 101.0, 3.0),
    _ev(3, "s2", "fill", "sell", 102.0, 2.0),
    _ev(3, "x2", "fill", "buy", 102.0, 3.0),
    _ev(3, "x2", "fill", "buy", 102.0, 2.0),
]


def test_book_levels_known_sequence_matches_hand_computed_book():
    tab = book_levels(tb.orders(BOOK_EVENTS), n_levels=5, every=1.0)
    assert _levels_at(tab, 0) == {"buy": [(99.0, 3.0), (98.0, 4.0)], "sell": [(101.0, 3.0), (102.0, 5.0)]}
    # partial fill leaves 1 of b1 + b2 at 99; the marketable x1 never rests
    assert _levels_at(tab, 1) == {"buy": [(99.0, 2.0), (98.0, 4.0)], "sell": [(101.0, 3.0), (102.0, 5.0)]}
    assert _levels_at(tab, 2) == {"buy": [(99.0, 2.0)], "sell": [(101.0, 3.0), (102.0, 5.0)]}
    # best ask level swept, next level partly taken; the aggressor is fully filled and never rests
    assert _levels_at(tab, 3) == {"buy": [(99.0, 2.0)], "sell": [(102.0, 3.0)]}


def test_book_levels_n_levels_one_keeps_only_best_prices():
    tab = book_levels(tb.orders(BOOK_EVENTS), n_levels=1, every=1.0)
    assert _levels_at(tab, 0) == {"buy": [(99.0, 3.0)], "sell": [(101.0, 3.0)]}
    assert set(tab["level"].to_pylist()) == {1}


def test_book_imbalance_known_sequence_matches_formula():
    imb = book_imbalance(tb.orders(BOOK_EVENTS), n_levels=2, every=1.0).to_pylist()
    by_t = {r["ts"]: r for r in imb}
    r0 = by_t[tb.at(0)]
    assert (r0["bid_qty"], r0["ask_qty"], r0["best_bid"], r0["best_ask"]) == (7.0, 8.0, 99.0, 101.0)
    assert r0["imbalance"] == pytest.approx((7 - 8) / 15)
    r3 = by_t[tb.at(3)]
    assert (r3["bid_qty"], r3["ask_qty"]) == (2.0, 3.0)
    assert r3["imbalance"] == pytest.approx(-0.2)
    # top-1 only: 3 vs 3 at t=0
    top1 = book_imbalance(tb.orders(BOOK_EVENTS), n_levels=1, every=1.0).to_pylist()
    assert top1[0]["imbalance"] == pytest.approx(0.0)


def test_book_imbalance_one_sided_and_empty_book_gives_plus_minus_one_and_null():
    ev = [
        _new(0, "b", "buy", 10.0, 1.0),
        _ev(1, "b", "cancel", "buy", 10.0, 1.0),
        _new(2, "s", "sell", 11.0, 2.0),
    ]
    imb = {r["ts"]: r for r in book_imbalance(tb.orders(ev), every=1.0).to_pylist()}
    assert imb[tb.at(0)]["imbalance"] == 1.0
    assert imb[tb.at(1)]["imbalance"] is None and imb[tb.at(1)]["bid_qty"] == 0.0
    assert imb[tb.at(2)]["imbalance"] == -1.0


def test_book_levels_crossed_resting_levels_are_both_reported():
    # a bid above the ask (e.g. a venue feed gap) is shown as is, not silently matched
    ev = [_new(0, "b", "buy", 101.0, 1.0), _new(0, "s", "sell", 100.0, 2.0)]
    tab = book_levels(tb.orders(ev), every=1.0)
    assert _levels_at(tab, 0) == {"buy": [(101.0, 1.0)], "sell": [(100.0, 2.0)]}


def test_book_levels_venues_and_assets_are_separate_books():
    ev = [
        _new(0, "a", "buy", 10.0, 1.0, venue="EXA"),
        _new(0, "b", "buy", 10.0, 2.0, venue="EXB"),
        _new(0, "c", "buy", 10.0, 4.0, venue="EXA", asset="ETH-USD"),
    ]
    rows = book_levels(tb.orders(ev), every=1.0).to_pylist()
    got = {(r["venue"], r["asset"]): r["qty"] for r in rows}
    assert got == {("EXA", "BTC-USD"): 1.0, ("EXB", "BTC-USD"): 2.0, ("EXA", "ETH-USD"): 4.0}


def test_book_levels_fill_at_execution_price_reduces_the_limit_price_level():
    # a fill reported at a better execution price still depletes the order's own limit level
    ev = [_new(0, "b", "buy", 100.0, 3.0), _ev(1, "b", "fill", "buy", 99.5, 1.0)]
    tab = book_levels(tb.orders(ev), every=1.0)
    assert _levels_at(tab, 1) == {"buy": [(100.0, 2.0)], "sell": []}


def test_book_levels_window_samples_include_history_before_start():
    tab = book_levels(tb.orders(BOOK_EVENTS), every=0.5, start=tb.at(2), end=tb.at(2.5))
    assert sorted({r["ts"] for r in tab.to_pylist()}) == [tb.at(2), tb.at(2.5)]
    assert _levels_at(tab, 2.5)["buy"] == [(99.0, 2.0)]


def test_book_levels_bad_params_are_refused():
    with pytest.raises(ValueError, match="'n_levels' parameter"):
        book_levels(tb.orders(BOOK_EVENTS), n_levels=0)
    with pytest.raises(ValueError, match="'every' parameter"):
        book_levels(tb.orders(BOOK_EVENTS), every=0)


def test_level_changes_known_sequence_ends_with_empty_levels():
    rows = level_changes(tb.orders(BOOK_EVENTS)).to_pylist()
    last: dict[tuple[str, float], float] = {}
    for r in rows:
        last[(r["side"], r["price"])] = r["level_qty"]
    assert last == {
        ("buy", 99.0): 2.0,
        ("buy", 98.0): 0.0,
        ("buy", 102.0): 0.0,
        ("sell", 101.0): 0.0,
        ("sell", 102.0): 3.0,
        ("sell", 99.0): 0.0,
    }


def test_book_levels_empty_orders_give_empty_tables():
    assert book_levels(tb.orders([])).num_rows == 0
    assert book_imbalance(tb.orders([])).num_rows == 0


# -- property: vectorised book == reference replay ---------------------------------------------


def _replay(events: list[dict], n_levels: int) -> dict[int, dict[str, list[tuple[float, float]]]]:
    """Event-by-event reference: the top levels after every distinct timestamp (in µs)."""
    remaining: dict[str, float] = {}
    meta: dict[str, tuple[str, float]] = {}
    out = {}
    events = sorted(events, key=lambda e: e["ts"])
    for i, e in enumerate(events):
        oid = e["order_id"]
        if e["event"] == "new":
            meta[oid] = (e["side"], e["price"])
            remaining[oid] = remaining.get(oid, 0.0) + e["qty"]
        else:
            remaining[oid] = remaining.get(oid, 0.0) - e["qty"]
        if i + 1 < len(events) and events[i + 1]["ts"] == e["ts"]:
            continue
        depth: dict[tuple[str, float], float] = defaultdict(float)
        for o, q in remaining.items():
            depth[meta[o]] += q
        book: dict[str, list[tuple[float, float]]] = {"buy": [], "sell": []}
        for (side, price), q in depth.items():
            if q > 1e-9:
                book[side].append((price, q))
        book["buy"].sort(key=lambda x: -x[0])
        book["sell"].sort(key=lambda x: x[0])
        out[round(e["ts"] * US)] = {s: lv[:n_levels] for s, lv in book.items()}
    return out


@st.composite
def _sequences(draw: st.DrawFn) -> list[dict]:
    """Random valid lifecycles: each order is new, then fills/cancel that never exceed what is left."""
    n_orders = draw(st.integers(1, 8))
    events = []
    for k in range(n_orders):
        side = draw(st.sampled_from(["buy", "sell"]))
        price = float(draw(st.integers(95, 105)))
        qty = float(draw(st.integers(1, 6)))
        t = draw(st.integers(0, 10))
        events.append(_new(t, f"o{k}", side, price, qty))
        left = qty
        for _ in range(draw(st.integers(0, 3))):
            if left <= 0:
                break
            t += draw(st.integers(0, 3))
            if draw(st.booleans()):
                events.append(_ev(t, f"o{k}", "cancel", side, price, left))
                left = 0
            else:
                f = float(draw(st.integers(1, int(left))))
                events.append(_ev(t, f"o{k}", "fill", side, price, f))
                left -= f
    return events


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=_sequences(), n_levels=st.integers(1, 3))
def test_book_levels_random_sequences_equal_reference_replay(events, n_levels):
    tab = book_levels(tb.orders(events), n_levels=n_levels, every=None)
    got: dict[int, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: {"buy": [], "sell": []})
    for r in tab.to_pylist():
        us = (r["ts"] - tb.T0) // dt.timedelta(microseconds=1)
        got[us][r["side"]].append((r["price"], r["qty"]))
    want = _replay(events, n_levels)
    for us, book in want.items():
        assert got.get(us, {"buy": [], "sell": []}) == book, f"t={us / US}s"
    imb = book_imbalance(tb.orders(events), n_levels=n_levels, every=None).to_pylist()
    assert len(imb) == len(want)  # one row per event timestamp, empty books included
    for r in imb:
        us = (r["ts"] - tb.T0) // dt.timedelta(microseconds=1)
        bid = sum(q for _, q in want[us]["buy"])
        ask = sum(q for _, q in want[us]["sell"])
        if bid + ask == 0:
            assert r["imbalance"] is None
        else:
            assert math.isclose(r["imbalance"], (bid - ask) / (bid + ask))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=_sequences(), step=st.sampled_from([0.5, 2.5, 4.0]))
def test_book_imbalance_grid_samples_equal_replay_state_at_last_earlier_event(events, step):
    want = _replay(events, 2)
    event_us = sorted(want)
    imb = book_imbalance(tb.orders(events), n_levels=2, every=step).to_pylist()
    step_us = round(step * US)
    t0_us = (tb.T0 - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
    assert t0_us % step_us == 0  # so grid points are event-relative multiples of the step below
    first, last = event_us[0], event_us[-1]
    grid = list(range(-(-first // step_us) * step_us, last + 1, step_us))
    assert [(r["ts"] - tb.T0) // dt.timedelta(microseconds=1) for r in imb] == grid
    for r, g in zip(imb, grid, strict=True):
        state = want[max(u for u in event_us if u <= g)]
        bid = sum(q for _, q in state["buy"])
        ask = sum(q for _, q in state["sell"])
        assert (r["bid_qty"], r["ask_qty"]) == (bid, ask), f"t={g / US}s"


def test_book_levels_unaligned_start_samples_on_step_multiples_inside_window():
    tab = book_levels(tb.orders(BOOK_EVENTS), every=1.0, start=tb.at(0.3), end=tb.at(2.9))
    assert sorted({r["ts"] for r in tab.to_pylist()}) == [tb.at(1), tb.at(2)]
