"""Background (innocent) flow: market makers quoting and cancelling, takers crossing the spread.

Everything is vectorised per order book (asset × venue): a book has a few market makers that re-quote one
level per side on a common refresh cycle (so their quotes never cross each other for longer than the
0.25 s stagger between makers), and takers whose marketable orders fill against one maker's current quote.
Every trade therefore has a taker `new` + `fill`, a maker `fill` of a quote posted earlier, and quotes are
cancelled with their remaining quantity when refreshed.

The flow is calibrated so clean data stays quiet for the rules (see ``docs/schema.md``): no self-trades, no
account above ~20 instructions a minute, makers' cancels per fill well under 6, single-level quoting (no
ladders), quotes live ≥ 15 s, trade notionals capped far below "large print" size, one device and subnet per
account except a few two-account households, and stationary activity through the day.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from market_surveillance.enums import Segment, Side
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.universe import Population

#: share of taker trades and (median, cap) notional in USD per taker segment
TAKERS: dict[Segment, tuple[float, float, float]] = {
    Segment.RETAIL: (0.55, 700.0, 15_000.0),
    Segment.INSTITUTIONAL: (0.15, 4_000.0, 40_000.0),
    Segment.PROPRIETARY: (0.18, 1_500.0, 15_000.0),
    Segment.HIGH_FREQUENCY: (0.12, 400.0, 4_000.0),
}
MM_STAGGER_US = 250_000  # makers of one book re-quote 0.25 s apart
MIN_REFRESH_S, MAX_REFRESH_S = 15.0, 900.0


@dataclass
class BackgroundPopulation:
    """Background account ids per taker segment (with activity weights) and market makers per book."""

    takers: dict[Segment, np.ndarray] = field(default_factory=dict)
    weights: dict[Segment, np.ndarray] = field(default_factory=dict)
    makers: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    siblings: dict[str, list[str]] = field(
        default_factory=dict
    )  # owner -> its accounts, multi-account owners

    @property
    def all_ids(self) -> list[str]:
        ids = [a for seg in self.takers.values() for a in seg]
        return ids + [a for mm in self.makers.values() for a in mm]


def create_population(ctx: SimContext, pop: Population, rng: np.random.Generator) -> BackgroundPopulation:
    """Create the background accounts (baselines are set from their realised activity later) and fill
    ``ctx.crowd`` so scenarios can pick innocent counterparties."""
    out = BackgroundPopulation()
    counts = {
        Segment.RETAIL: pop.retail,
        Segment.INSTITUTIONAL: pop.institutional,
        Segment.PROPRIETARY: pop.proprietary,
        Segment.HIGH_FREQUENCY: pop.high_frequency,
    }
    for seg, n in counts.items():
        ids = np.array([ctx.accounts.add(seg, 0.0) for _ in range(n)], dtype=object)
        out.takers[seg] = ids
        w = rng.lognormal(0.0, 0.8, n)
        out.weights[seg] = w / w.sum()
        ctx.crowd[seg.value] = list(ids)
    # a few two-account households share a device (clusters of two never reach a 3-account ring)
    retail = out.takers[Segment.RETAIL]
    n_pairs = max(1, len(retail) // 40)
    picks = rng.choice(len(retail), size=2 * n_pairs, replace=False).reshape(-1, 2)
    for a, b in picks:
        dev = ctx.accounts.net_device[ctx.accounts.ids.index(retail[a])]
        ctx.accounts.link(retail[b], device_id=dev)
    mms: list[str] = []
    for asset in ctx.universe.assets:
        for venue in ctx.universe.venues:
            ids = [ctx.accounts.add(Segment.MARKET_MAKER, 0.0) for _ in range(pop.market_makers_per_book)]
            out.makers[(asset.asset, venue)] = ids
            ctx.makers[(asset.asset, venue)] = ids
            mms += ids
    ctx.crowd[Segment.MARKET_MAKER.value] = mms
    return out


def assign_owners(ctx: SimContext, bg: BackgroundPopulation, rng: np.random.Generator) -> None:
    """Beneficial owners holding several innocent accounts (every other account is its own owner).

    * Trading firms: one market-making account plus one or two institutional/proprietary taker accounts
      (desks of one legal entity). The takers never fill their own firm's quotes (see ``_book``).
    * Retail customers with a main account and a sub-account on the same device.

    Accounts of one owner never trade with each other in the background: any such trade is wash trading
    by definition, so it only appears in labelled scenarios.
    """
    makers = [m for ids in bg.makers.values() for m in ids]
    takers = list(bg.takers[Segment.INSTITUTIONAL]) + list(bg.takers[Segment.PROPRIETARY])
    n_firms = min(max(2, len(makers) // 6), len(makers), len(takers) // 2)
    mm_pick = rng.choice(len(makers), size=n_firms, replace=False)
    tk_pick = iter(rng.permutation(len(takers)).tolist())
    for i in mm_pick:
        owner = ctx.accounts.owner_of(makers[int(i)])
        bg.siblings[owner] = [makers[int(i)]]
        for _ in range(int(rng.integers(1, 3))):
            tk = takers[next(tk_pick)]
            ctx.accounts.set_owner(tk, owner)
            bg.siblings[owner].append(tk)
    # customers outside the two-account households, so no device ever links three accounts
    acc = ctx.accounts
    shared = {d for d, k in Counter(acc.net_device).items() if k > 1}
    in_household = {a for a, d in zip(acc.net_account, acc.net_device, strict=True) if d in shared}
    retail = np.array([a for a in bg.takers[Segment.RETAIL] if a not in in_household], dtype=object)
    n_pairs = max(1, len(retail) // 60)
    for a, b in rng.choice(len(retail), size=2 * n_pairs, replace=False).reshape(-1, 2):
        ctx.accounts.set_owner(retail[b], ctx.accounts.owner_of(retail[a]))
        bg.siblings[ctx.accounts.owner_of(retail[a])] = [retail[a], retail[b]]
        dev = ctx.accounts.net_device[ctx.accounts.net_account.index(retail[a])]
        ctx.accounts.link(retail[b], device_id=dev)


def internal_transfers(ctx: SimContext, bg: BackgroundPopulation, n: int, rng: np.random.Generator) -> None:
    """``n`` innocent internal transfers: an owner moves inventory between two of its accounts and the venue
    books it as a trade between them at the venue price (both orders at the same instant, no resting time).

    Untagged and unlabelled: they are the known false positive of owner-linked wash-trade detection, added
    only on request (``simulate(internal_transfers=n)``) to measure it.
    """
    u = ctx.universe
    owners = sorted(o for o, accts in bg.siblings.items() if len(accts) >= 2)
    if not owners or n <= 0:
        return
    for t in np.sort(rng.integers(u.start_us + 3600 * US, u.end_us - 60 * US, n)):
        accts = bg.siblings[owners[int(rng.integers(len(owners)))]]
        a, b = (accts[int(i)] for i in rng.choice(len(accts), size=2, replace=False))
        spec = u.assets[int(rng.integers(len(u.assets)))]
        venue = u.venues[int(rng.integers(len(u.venues)))]
        px = float(f"{ctx.price(spec.asset, venue, int(t)):.6g}")
        qty = float(f"{spec.typical_qty * rng.lognormal(2.0, 0.7):.6g}")
        ctx.tape.cross(int(t), venue, spec.asset, a, b, Side.BUY, px, qty, resting_delay_us=0)


def generate_background(
    ctx: SimContext, n_trades: int, bg: BackgroundPopulation, rng: np.random.Generator
) -> None:
    """Append the background orders and trades of the whole day to ``ctx.tape``."""
    u = ctx.universe
    books = [(a, v) for a in u.assets for v in u.venues]
    # thin books with a fixed pace keep it at any scale; the others share the remaining trades by weight
    minutes = (u.end_us - u.start_us) / (60 * US)
    fixed = np.array([a.trades_per_min is not None for a, _ in books])
    per_book = np.zeros(len(books), dtype=np.int64)
    if fixed.any():
        lam = np.array([(a.trades_per_min or 0.0) * minutes / len(u.venues) for a, _ in books])
        per_book[fixed] = rng.poisson(lam[fixed])
    rest = max(n_trades - int(per_book.sum()), 0)
    if (~fixed).any():
        p = np.array([a.weight for a, _ in books], dtype=float)[~fixed]
        per_book[~fixed] = rng.multinomial(rest, p / p.sum())
    seg_list = list(TAKERS)
    seg_share = np.array([TAKERS[s][0] for s in seg_list])
    for (asset, venue), n_k in zip(books, per_book, strict=True):
        _book(ctx, asset, venue, int(n_k), bg, rng, seg_list, seg_share)


def _book(ctx, asset, venue, n_k, bg, rng, seg_list, seg_share) -> None:  # type: ignore[no-untyped-def]
    u = ctx.universe
    day_us = u.end_us - u.start_us
    makers = np.array(bg.makers[(asset.asset, venue)], dtype=object)
    n_mm = len(makers)

    # refresh cycle: slow enough that each maker's cancels per fill stay low on thin books
    n30 = max(n_k / (day_us / (1800 * US)), 1e-9)
    refresh_s = float(np.clip(4320.0 * n_mm / n30, MIN_REFRESH_S, MAX_REFRESH_S)) * rng.uniform(1.0, 1.3)
    r_us = int(refresh_s * US)
    n_cycles = day_us // r_us + 1
    cycle_t = u.start_us + np.arange(n_cycles, dtype=np.int64) * r_us
    mid = ctx.prices.price(asset.asset, venue, cycle_t)
    half = rng.uniform(1.5, 4.0, n_mm) * (6.0 if asset.thin else 1.0) * 1e-4
    offset = np.arange(n_mm, dtype=np.int64) * MM_STAGGER_US

    # takers
    t = np.sort(rng.integers(u.start_us + MM_STAGGER_US * n_mm, u.end_us, n_k, dtype=np.int64))
    m = rng.integers(0, n_mm, n_k)
    cyc = (t - u.start_us - offset[m]) // r_us
    buy = rng.random(n_k) < 0.5  # aggressor side
    price = mid[cyc] * np.where(buy, 1.0 + half[m], 1.0 - half[m])
    seg_idx = rng.choice(len(seg_list), size=n_k, p=seg_share)
    taker = np.empty(n_k, dtype=object)
    notional = np.empty(n_k)
    for s_i, seg in enumerate(seg_list):
        sel = np.flatnonzero(seg_idx == s_i)
        ids, w = bg.takers[seg], bg.weights[seg]
        taker[sel] = ids[rng.choice(len(ids), size=len(sel), p=w)]
        _, med, cap = TAKERS[seg]
        notional[sel] = np.minimum(rng.lognormal(np.log(med), 0.9, len(sel)), cap) * asset.notional_scale
    # a taker never fills its own firm's quote: such trades go to another maker of the book (owner-linked
    # trades in the background would be true hits of owner-linked wash-trade detection, not noise)
    owners = ctx.accounts.owners
    index = {a: i for i, a in enumerate(ctx.accounts.ids)} if n_mm > 1 else {}
    for j, mk in enumerate(makers if n_mm > 1 else []):
        own = owners[index[mk]]
        siblings = [a for a in bg.siblings.get(own, ()) if a != mk]
        if siblings:
            hit = (m == j) & np.isin(taker, siblings)
            if hit.any():
                m[hit] = (j + 1) % n_mm
                cyc[hit] = (t[hit] - u.start_us - offset[m[hit]]) // r_us
                price[hit] = mid[cyc[hit]] * np.where(buy[hit], 1.0 + half[m[hit]], 1.0 - half[m[hit]])
    qty = np.round(notional / price, 8)
    qty = np.maximum(qty, 1e-8)

    # quote size: comfortably above what a quote is expected to trade before its refresh
    exp_fills = n_k / max(n_cycles, 1) / (2 * n_mm)
    quote_qty = max(30.0 * asset.typical_qty, 6.0 * max(exp_fills, 1.0) * (float(qty.mean()) if n_k else 0.0))
    quote_side = np.where(buy, 1, 0)  # aggressor buy hits the maker's ask (sell quote)
    key = (m * 2 + quote_side) * n_cycles + cyc
    order = np.lexsort((t, key))
    ks, qs = key[order], qty[order]
    csum = np.cumsum(qs)
    start = np.r_[True, ks[1:] != ks[:-1]]
    group_base = np.maximum.accumulate(np.where(start, csum - qs, 0.0))
    keep_sorted = (csum - group_base) < 0.95 * quote_qty
    keep = np.empty(n_k, dtype=bool)
    keep[order] = keep_sorted
    t, m, cyc, buy, price, qty, taker, key, quote_side = (
        x[keep] for x in (t, m, cyc, buy, price, qty, taker, key, quote_side)
    )
    n_t = len(t)

    # quotes: one per maker, side and cycle
    n_q = n_mm * 2 * n_cycles
    q_ids = ctx.tape.alloc_orders(n_q)
    q_m = np.repeat(np.arange(n_mm), 2 * n_cycles)
    q_side = np.tile(np.repeat(np.arange(2), n_cycles), n_mm)  # 0 buy (bid), 1 sell (ask)
    q_cyc = np.tile(np.arange(n_cycles), 2 * n_mm)
    q_t = cycle_t[q_cyc] + offset[q_m]
    q_price = mid[q_cyc] * np.where(q_side == 0, 1.0 - half[q_m], 1.0 + half[q_m])
    filled = np.bincount(key, weights=qty, minlength=n_q)
    live = q_t < u.end_us
    q_next = q_t + r_us
    cancel = live & (q_next < u.end_us)

    taker_ids = ctx.tape.alloc_orders(n_t)
    maker_quote = q_ids[key]
    venue_arr = np.full(1, venue, dtype=object)
    asset_arr = np.full(1, asset.asset, dtype=object)
    none = np.full(1, None, dtype=object)

    def rep(a: np.ndarray, n: int) -> np.ndarray:
        return np.broadcast_to(a, (n,)).copy()

    n_live, n_cancel = int(live.sum()), int(cancel.sum())
    events = {
        "ts_us": np.concatenate([q_t[live], q_next[cancel], t, t, t]),
        "order": np.concatenate([q_ids[live], q_ids[cancel], taker_ids, taker_ids, maker_quote]),
        "account": np.concatenate([makers[q_m[live]], makers[q_m[cancel]], taker, taker, makers[m]]),
        "event": np.concatenate(
            [
                np.zeros(n_live, np.int8),
                np.ones(n_cancel, np.int8),
                np.zeros(n_t, np.int8),
                np.full(2 * n_t, 2, np.int8),
            ]
        ),
        "side": np.concatenate(
            [q_side[live], q_side[cancel], np.where(buy, 0, 1), np.where(buy, 0, 1), quote_side]
        ).astype(np.int8),
        "price": np.concatenate([q_price[live], q_price[cancel], price, price, q_price[key]]),
        "qty": np.concatenate([np.full(n_live, quote_qty), quote_qty - filled[cancel], qty, qty, qty]),
    }
    n_ev = len(events["ts_us"])
    events["venue"] = rep(venue_arr, n_ev)
    events["asset"] = rep(asset_arr, n_ev)
    events["scenario"] = rep(none, n_ev)
    ctx.tape.extend_orders(events)

    maker_acct = makers[m]
    ctx.tape.extend_trades(
        {
            "ts_us": t,
            "venue": rep(venue_arr, n_t),
            "asset": rep(asset_arr, n_t),
            "price": price,
            "qty": qty,
            "buyer": np.where(buy, taker, maker_acct),
            "seller": np.where(buy, maker_acct, taker),
            "aggressor": np.where(buy, 0, 1).astype(np.int8),
            "buy_order": np.where(buy, taker_ids, maker_quote),
            "sell_order": np.where(buy, maker_quote, taker_ids),
            "scenario": rep(none, n_t),
        }
    )
