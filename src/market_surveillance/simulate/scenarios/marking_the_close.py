"""Marking the close (crypto style): aggressive trading in the minutes before a benchmark fixing — the
daily 00:00 UTC candle close (the default ``Universe.fixing_times``), a perpetual's funding snapshot, an
index fixing — pushes the price the fixing is taken at; it drifts back once the fixing is in (when the
fixing lies inside the simulated day; the 00:00 close is the day's last instant).

Variants: ``ramp`` (a few trades a minute over the last 5–15 minutes) and ``last_minute`` (a handful of
larger prints in the final 30–120 seconds). The move is a multiple of the asset's own typical 15-minute
move, and the tickets a multiple of its typical trade, so every liquidity tier sees its own scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    HOUR_US,
    MINUTE_US,
    Injection,
    IntRange,
    Range,
    draw,
    draw_int,
    pick,
    reserve,
    scenario_rng,
    spaced_times,
    usd_scale,
    variants,
)

LAST_MINUTE = {"window_min": (0.5, 2.0), "trades_per_min": (3, 8), "ticket_multiple": (8, 20)}

WARM_UP_US = 13 * HOUR_US  # rules need the day's first hours as history (as ``SimContext.free_slot``)


@variants("ramp", last_minute=LAST_MINUTE)
def inject(
    ctx: SimContext,
    *,
    count: int = 2,
    variant: str = "ramp",
    traders: IntRange = (1, 2),
    window_min: Range = (5, 15),
    trades_per_min: Range = (2, 6),
    ticket_multiple: Range = (4, 12),
    move_vol: Range = (3, 6),
    revert_min: Range = (2, 10),
    baseline_hourly: Range = (10_000, 40_000),
    fixing: str | None = None,
    asset: str | None = None,
    venue: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject up to ``count`` marking-the-close instances (as many as free fixing windows allow); returns
    their scenario ids.

    Parameters
    ----------
    variant
        ``ramp`` (these defaults) or ``last_minute`` (:data:`LAST_MINUTE`).
    traders
        Accounts marking the fixing (label accounts), all trading in one direction.
    window_min, trades_per_min
        Minutes before the fixing in which they trade, and how often (at least three trades).
    ticket_multiple
        Size of each trade as a multiple of the asset's typical trade (``typical_qty`` × price).
    move_vol, revert_min
        Every venue's price is walked linearly, over the window, to ``move_vol`` × the asset's typical
        15-minute move (``daily_vol`` × sqrt(15 min / 1 day)) at the fixing, and back over ``revert_min``
        minutes after it (when the fixing is inside the day; at the day's own close the day ends first).
    baseline_hourly
        The traders' stored hourly notional norm (× the asset's ``notional_scale``).
    fixing
        Only this fixing time of day (``"HH:MM"`` UTC, one of ``Universe.fixing_times``); default: any
        fixing after the rules' warm-up hours.
    asset, venue, tiers
        Pin the instrument / venue, or prefer assets of these liquidity tiers (default: any).
    """
    rng = scenario_rng(ctx, "marking_the_close", variant, "ramp")
    u = ctx.universe
    fixes = [f for f in u.fixings_us() if f - u.start_us >= WARM_UP_US + 30 * MINUTE_US]
    if fixing is not None:
        h, m = (int(x) for x in fixing.split(":"))
        fixes = [f for f in fixes if (f // US) % 86_400 == h * 3600 + m * 60]
    if not fixes:
        raise ValueError(f"no fixing time inside the simulated day after the warm-up ({u.fixing_times})")
    pool = [asset] if asset else [a.asset for a in u.assets if not tiers or u.tier_of(a.asset) in set(tiers)]
    pool = pool or [a.asset for a in u.assets]
    ids: list[str] = []
    for _ in range(count):
        window = int(draw(rng, window_min) * MINUTE_US)
        revert = int(draw(rng, revert_min) * MINUTE_US)
        slot = None
        order = rng.permutation(len(pool) * len(fixes))
        # a clear gap from other injections on the asset if possible, else merely no overlap
        for margin in (10 * MINUTE_US, 0):
            for i in order:
                a, fix = pool[int(i) % len(pool)], fixes[int(i) // len(pool)]
                if reserve(ctx, a, fix - window, min(fix + revert, u.end_us), margin):
                    slot = (a, fix)
                    break
            if slot is not None:
                break
        if slot is None:
            # a world with few assets and one fixing may have no free window left: `count` is an upper
            # bound, and the labels hold exactly the instances that were injected
            break
        a, fix = slot
        spec = u.asset(a)
        v = venue or pick(rng, u.venues)
        side = Side.BUY if rng.random() < 0.5 else Side.SELL
        sign = 1.0 if side is Side.BUY else -1.0
        move = draw(rng, move_vol) * spec.daily_vol * np.sqrt(15 / 1440)
        g = u.grid_s * US
        start = fix - window
        factors = 1 + sign * move * np.concatenate(
            [np.linspace(0, 1, max(window // g, 1)), np.linspace(1, 0, max(revert // g, 1))]
        )
        ctx.prices.shift(a, None, start, factors)
        s = usd_scale(ctx, a)
        gang = [
            ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly) * s)
            for _ in range(draw_int(rng, traders))
        ]
        inj = Injection(ctx, Typology.MARKING_THE_CLOSE, a, v, gang, variant=variant)
        n = max(round(draw(rng, trades_per_min) * window / MINUTE_US), 3, len(gang))
        times = spaced_times(rng, start, window - 2 * US, n, min_gap_us=US // 2)
        for i, t in enumerate(times):
            px = ctx.price(a, v, int(t)) * (1 + sign * rng.uniform(0, 3e-4))
            qty = draw(rng, ticket_multiple) * spec.typical_qty
            inj.take(rng, int(t), gang[i % len(gang)], side, px, qty)
        ids.append(inj.finish(market_until_us=start + len(factors) * g))
    return ids
