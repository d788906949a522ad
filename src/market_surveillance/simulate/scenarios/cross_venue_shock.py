"""Cross-venue price shock: one venue's price dislocates by several percent from the others for a few
minutes, with prints there at the dislocated level.

Variants: ``plateau`` (on a liquid asset) and ``thin_book`` (on a thin token, with its small tickets).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Typology
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
    liquid_assets,
    pick,
    pick_slot,
    random_side,
    scenario_rng,
    spaced_times,
    usd_scale,
    variants,
)


@variants("plateau", thin_book={"tiers": ("micro_cap", "small_cap")})
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "plateau",
    shock_pct: Range = (3, 8),
    duration_min: Range = (2, 10),
    ramp_s: Range = (5, 20),
    printers: IntRange = (1, 2),
    prints_per_min: Range = (1.5, 4),
    print_notional: Range = (2_000, 20_000),
    reference_prints: bool = True,
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` cross-venue shocks; returns their scenario ids.

    Parameters
    ----------
    shock_pct, duration_min, ramp_s
        The venue's path is shifted by ±shock_pct % (rule: > 2 % spread between venues' 1-min VWAPs)
        for ``duration_min`` minutes, with linear ramps of ``ramp_s`` in and out.
    printers, prints_per_min, print_notional
        Accounts that print at the dislocated level (the label's accounts) and how often.
    reference_prints
        Also print, once a minute, between innocent accounts on another venue at the undisturbed
        price, so every minute bucket has a comparison venue even in a thin background.
    variant
        ``plateau`` (these defaults) or ``thin_book`` (on a thin token).
    asset, venue, tiers
        Pin the instrument / venue, or prefer assets of these liquidity tiers. USD knobs are multiplied
        by the asset's ``notional_scale``.
    """
    rng = scenario_rng(ctx, "cross_venue_shock", variant, "plateau")
    u = ctx.universe
    ids: list[str] = []
    for _ in range(count):
        dur = int(draw(rng, duration_min) * MINUTE_US)
        ramp = int(draw(rng, ramp_s) * US)
        a, start = pick_slot(ctx, rng, dur + 2 * ramp, asset_pool(ctx, asset, tiers, liquid_assets(ctx)))
        s = usd_scale(ctx, a)
        v = venue or pick(rng, u.venues)
        others = [x for x in u.venues if x != v]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        shock = sign * draw(rng, shock_pct) / 100
        g = u.grid_s * US
        factors = 1 + shock * np.concatenate(
            [
                np.linspace(0, 1, max(ramp // g, 1)),
                np.ones(max(dur // g, 1)),
                np.linspace(1, 0, max(ramp // g, 1)),
            ]
        )
        ctx.prices.shift(a, v, start, factors)
        accts = [
            ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly) * s)
            for _ in range(draw_int(rng, printers))
        ]
        inj = Injection(ctx, Typology.CROSS_VENUE_DISLOCATION, a, v, accts, variant=variant)
        plateau0 = start + ramp
        n_min = max(int(np.ceil(dur / MINUTE_US)), 1)
        n = max(round(draw(rng, prints_per_min) * dur / MINUTE_US), n_min)
        times = spaced_times(rng, plateau0, dur - US, n, min_gap_us=US)
        for t in times:
            px = ctx.price(a, v, int(t))
            inj.take(rng, int(t), pick(rng, accts), random_side(rng), px, draw(rng, print_notional) * s / px)
        if reference_prints and others:
            for m in range(n_min):
                t = plateau0 + m * MINUTE_US + int(rng.uniform(5, 55) * US)
                if t >= plateau0 + dur:
                    break
                w = pick(rng, others)
                px = ctx.price(a, w, t)
                qty = draw(rng, print_notional) * s / px
                makers = book_makers(ctx, a, w)
                resting = pick(rng, makers) if makers else counterparty(ctx, rng, px * qty)
                aggressor = counterparty(ctx, rng, px * qty)
                while aggressor == resting:  # two innocent parties, never an accidental self-trade
                    aggressor = counterparty(ctx, rng, px * qty)
                inj.cross(
                    t,
                    resting,
                    aggressor,
                    random_side(rng),
                    px,
                    qty,
                    venue=w,
                )
        ids.append(inj.finish(market_until_us=start + len(factors) * g))
    return ids
