"""Pump & dump on a thin token: manipulators accumulate quietly, the price is pumped while a crowd rushes
in, the manipulators dump into the rush and the price falls back.

Variants (``variant=``):

* ``rush`` — a Telegram-style pump: a gap of +15–60 % within seconds of the signal, an announcement burst
  of dozens of buys in the first minute, the full move within a few minutes;
* ``ramp`` — a slow ramp: no gap, no burst; the price is walked up +25–40 % over 15–30 minutes by
  10–15 buys a minute (manipulators and the crowd they draw in), then dumped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    MINUTE_US,
    Injection,
    IntRange,
    Range,
    asset_pool,
    book_makers,
    counterparty,
    draw,
    draw_int,
    pick,
    pick_slot,
    scenario_rng,
    spaced_times,
    thin_assets,
    usd_scale,
    variants,
)

#: knob values of the ``ramp`` variant (every other knob keeps its default)
RAMP = {
    "pump_pct": (25, 40),
    "jump_s": (1, 1),
    "jump_share": (0.0, 0.0),
    "ramp_min": (15, 30),
    "hold_min": (2, 6),
    "decay_min": (15, 30),
    "burst_trades": (0, 0),
    "rush_per_min": (10, 15),
    "crowd_share": (0.3, 0.6),
}


def _buy(
    ctx: SimContext,
    rng: np.random.Generator,
    inj: Injection,
    holdings: dict[str, float],
    t: int,
    acct: str,
    notional: float,
    maker: bool = False,
) -> None:
    """``acct`` lifts an offer on a random venue, paying up a little (from one of the book's market
    makers when ``maker``); manipulators' buys are tallied."""
    v = pick(rng, ctx.universe.venues)
    px = ctx.price(inj.asset, v, t) * (1 + rng.uniform(0, 5e-4))
    makers = book_makers(ctx, inj.asset, v) if maker else []
    cp = pick(rng, makers) if makers else counterparty(ctx, rng, notional, inj.asset, v)
    while cp == acct:  # an innocent counterparty is never the buyer itself
        cp = counterparty(ctx, rng, notional, inj.asset, v)
    _, aggr = inj.cross(t, cp, acct, Side.BUY, px, notional / px, venue=v)
    if acct in holdings:
        holdings[acct] += float(ctx.tape.order_info[aggr][5])


@variants("rush", ramp=RAMP)
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "rush",
    manipulators: IntRange = (2, 4),
    accumulate_min: Range = (18, 28),
    accumulate_trades: IntRange = (35, 60),
    accumulate_notional: Range = (1_000, 5_000),
    pump_pct: Range = (15, 60),
    jump_s: Range = (10, 40),
    jump_share: Range = (0.5, 0.8),
    ramp_min: Range = (2, 6),
    hold_min: Range = (3, 10),
    decay_min: Range = (10, 25),
    rush_trades: IntRange = (30, 80),
    burst_trades: IntRange = (60, 160),
    burst_s: Range = (30, 90),
    crowd_share: Range = (0.4, 0.7),
    crowd_notional: Range = (200, 2_000),
    dump_trades: IntRange = (10, 25),
    baseline_hourly: Range = (5_000, 20_000),
    rush_per_min: Range | None = None,
    asset: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` pump-and-dump instances; returns their scenario ids.

    Parameters
    ----------
    manipulators
        Accounts running the scheme (label accounts).
    accumulate_min, accumulate_trades, accumulate_notional
        The quiet accumulation right before the pump: buys at the fair price (they also give the
        price-move rule the ≥ 30 prior prints it needs in its 30-min window).
    pump_pct, jump_s, jump_share, ramp_min, hold_min, decay_min
        Market-wide price path shift: a gap up to ``jump_share`` of +pump_pct % within ``jump_s``
        seconds (the "signal" moment of a pump group), a linear climb to the full move by
        ``ramp_min`` minutes, a plateau, a linear decay back. A slow smooth ramp would drag the
        trailing mean along and hide the move from a z-score, which is not how these schemes look.
    rush_trades, crowd_share, crowd_notional
        Aggressive buys during the ramp and plateau; on the ramp ``crowd_share`` of them come from
        innocent retail accounts (small tickets) and the rest from the manipulators, on the plateau
        only from the crowd; the crowd lifts the book's market makers.
    burst_trades, burst_s
        The announcement rush: this many small crowd buys within ``burst_s`` seconds of the jump (real
        Telegram pumps print hundreds of rush orders in their first minute; La Morgia et al. 2020).
    dump_trades
        Sells by which the manipulators unload everything they bought, from the peak into the decay.
    rush_per_min
        When given, the rush has this many buys per minute of the ramp instead of ``rush_trades``.
    variant
        ``rush`` (these defaults) or ``ramp`` (:data:`RAMP` replaces the defaults; explicit knobs still win).
    asset, tiers
        Pin the instrument, or prefer assets of these liquidity tiers (default: the thin tokens). USD knobs
        are multiplied by the asset's ``notional_scale``.
    """
    rng = scenario_rng(ctx, "pump_and_dump", variant, "rush")
    u = ctx.universe
    ids: list[str] = []
    for _ in range(count):
        acc = int(draw(rng, accumulate_min) * MINUTE_US)
        ramp = int(draw(rng, ramp_min) * MINUTE_US)
        hold = int(draw(rng, hold_min) * MINUTE_US)
        decay = int(draw(rng, decay_min) * MINUTE_US)
        a, start = pick_slot(
            ctx, rng, acc + ramp + hold + decay, asset_pool(ctx, asset, tiers, thin_assets(ctx))
        )
        s = usd_scale(ctx, a)
        gang = [
            ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly) * s)
            for _ in range(draw_int(rng, manipulators))
        ]
        inj = Injection(ctx, Typology.PUMP_AND_DUMP, a, None, gang, variant=variant)
        holdings = dict.fromkeys(gang, 0.0)

        # 1. quiet accumulation at the fair price
        n_acc = max(draw_int(rng, accumulate_trades), len(gang))
        for i, t in enumerate(spaced_times(rng, start, acc - MINUTE_US, n_acc, min_gap_us=5 * US)):
            # round robin: every manipulator holds something to dump
            _buy(ctx, rng, inj, holdings, int(t), gang[i % len(gang)], draw(rng, accumulate_notional) * s)

        # 2. the pump: shift every venue's path (background flow generated later follows it)
        t_pump = start + acc
        pct = draw(rng, pump_pct) / 100
        g = u.grid_s * US
        jump = max(int(draw(rng, jump_s) * US) // g, 1)
        js = draw(rng, jump_share)
        factors = 1 + pct * np.concatenate(
            [
                np.linspace(0, js, jump),
                np.linspace(js, 1, max((ramp - jump * g) // g, 1)),
                np.ones(max(hold // g, 1)),
                np.linspace(1, 0, max(decay // g, 1)),
            ]
        )
        ctx.prices.shift(a, None, t_pump, factors)

        # 3. the rush: crowd and manipulators lift market makers' offers during ramp and plateau
        share = draw(rng, crowd_share)
        n_rush = (
            draw_int(rng, rush_trades)
            if rush_per_min is None
            else round(draw(rng, rush_per_min) * (ramp - jump * g) / MINUTE_US)
        )
        rush = spaced_times(rng, t_pump + jump * g, ramp - jump * g + hold // 2, n_rush, min_gap_us=2 * US)
        retail = ctx.crowd.get(Segment.RETAIL.value)
        t_peak = t_pump + ramp
        for t in rush:
            # manipulators chase only on the way up; on the plateau the crowd buys what they dump
            if retail and (t >= t_peak or rng.random() < share):
                buyer = ctx.crowd_account(rng, Segment.RETAIL)
                _buy(ctx, rng, inj, holdings, int(t), buyer, draw(rng, crowd_notional) * s, maker=True)
            else:
                _buy(ctx, rng, inj, holdings, int(t), pick(rng, gang), draw(rng, accumulate_notional) * s)

        # 3b. the announcement burst: the group's members pile in within seconds of the jump
        # (right after the opening jump; the sellers are the many small holders resting offers)
        burst = spaced_times(
            rng,
            t_pump + jump * g,
            int(draw(rng, burst_s) * US),
            draw_int(rng, burst_trades),
            min_gap_us=US // 10,
        )
        for t in burst:
            buyer = ctx.crowd_account(rng, Segment.RETAIL) if retail else pick(rng, gang)
            v = pick(rng, u.venues)
            px = ctx.price(a, v, int(t)) * (1 + rng.uniform(0, 5e-4))
            seller = ctx.crowd_account(rng, Segment.RETAIL) if retail else None
            while seller is None or seller == buyer:
                seller = (
                    counterparty(ctx, rng, px, a, v) if not retail else ctx.crowd_account(rng, Segment.RETAIL)
                )
            inj.cross(int(t), seller, buyer, Side.BUY, px, draw(rng, crowd_notional) * s / px, venue=v)

        # 4. the dump: manipulators sell everything into the crowd from the peak into the decay
        n_dump = draw_int(rng, dump_trades)
        sellers = [gang[i % len(gang)] for i in range(max(n_dump, len(gang)))]
        rng.shuffle(sellers)
        left = dict(holdings)
        for i, t in enumerate(spaced_times(rng, t_peak, hold + decay // 3, len(sellers), min_gap_us=2 * US)):
            acct = sellers[i]
            rest = sellers[i + 1 :].count(acct)
            qty = left[acct] if rest == 0 else left[acct] * rng.uniform(0.5, 1.5) / (rest + 1)
            left[acct] -= qty
            v = pick(rng, u.venues)
            px = ctx.price(a, v, int(t)) * (1 - rng.uniform(0, 5e-4))
            inj.cross(int(t), counterparty(ctx, rng, px * qty, a, v), acct, Side.SELL, px, qty, venue=v)
        ids.append(inj.finish(market_until_us=t_pump + len(factors) * g))
    return ids
