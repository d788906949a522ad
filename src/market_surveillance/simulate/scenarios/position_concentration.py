"""Position concentration: one account ends the day holding a large share of a thin token's float
(an opening position plus buys spread over the day).

Variants: ``large_holder`` (22–40 % of the float and at least $1.2M) and ``low_cap`` (25–35 % of a micro-cap
token's float, whatever that is worth: often well under $1M).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import SimContext
from market_surveillance.simulate.scenarios._common import (
    HOUR_US,
    Injection,
    Range,
    asset_pool,
    counterparty,
    draw,
    pick,
    scenario_rng,
    split_notional,
    thin_assets,
    variants,
)

LOW_CAP = {
    "target_share": (0.25, 0.35),
    "min_value_usd": (0, 0),
    "buy_notional": (500, 2_000),
    "tiers": ("micro_cap",),
}


@variants("large_holder", low_cap=LOW_CAP)
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "large_holder",
    target_share: Range = (0.22, 0.40),
    min_value_usd: Range = (1_200_000, 2_000_000),
    opening_share: Range = (0.6, 0.85),
    buy_notional: Range = (10_000, 25_000),
    asset: str | None = None,
    tiers: Sequence[str] | None = ("small_cap",),
) -> list[str]:
    """Inject ``count`` position-concentration instances; returns their scenario ids.

    Parameters
    ----------
    target_share, min_value_usd
        End-of-day holding: the larger of this share of the float and this USD value at the closing
        fair price (rule: ≥ 20 % of float and ≥ 1,000,000 USD).
    opening_share
        Part of the final holding already held at the start (``ctx.opening_positions``); the rest is
        bought during the day.
    buy_notional
        USD size of the day's buys, spread evenly over the whole day (so the account's 2-h notional
        stays steady, no single counterparty takes a large ticket, and only the size of the holding
        stands out).
    variant
        ``large_holder`` (these defaults) or ``low_cap`` (:data:`LOW_CAP`).
    asset, tiers
        Pin the instrument, or prefer assets of these liquidity tiers (default: the small caps, else the
        thin tokens). The holding never exceeds 60 % of the float.
    """
    rng = scenario_rng(ctx, "position_concentration", variant, "large_holder")
    u = ctx.universe
    ids: list[str] = []
    for _ in range(count):
        a = pick(rng, asset_pool(ctx, asset, tiers, thin_assets(ctx)))
        spec = u.asset(a)
        close_px = float(ctx.prices.fair[a][-1])
        target = max(draw(rng, target_share) * spec.float_qty, draw(rng, min_value_usd) / close_px)
        target = min(target, 0.6 * spec.float_qty)
        opening = draw(rng, opening_share) * target
        bought = (
            split_notional(rng, (target - opening) * spec.start_price, buy_notional, 2) / spec.start_price
        )
        n = len(bought)
        acct = ctx.accounts.add(Segment.INSTITUTIONAL, (target - opening) * spec.start_price / 24)
        ctx.opening_positions[(acct, a)] = ctx.opening_positions.get((acct, a), 0.0) + opening
        inj = Injection(ctx, Typology.POSITION_CONCENTRATION, a, None, [acct], variant=variant)
        # one buy in each of n equal strata of the day: no slot reservation, no 2-h burst of notional
        edges = np.linspace(u.start_us + HOUR_US // 2, u.end_us - HOUR_US // 2, n + 1)
        times = edges[:-1] + rng.uniform(0, 1, n) * np.diff(edges)
        for t, qty in zip(times.astype(np.int64), bought, strict=True):
            v = pick(rng, u.venues)
            px = ctx.price(a, v, int(t))
            inj.cross(int(t), counterparty(ctx, rng, px * qty, a, v), acct, Side.BUY, px, qty, venue=v)
        ids.append(inj.finish())
    return ids
