"""Cancel-to-fill surge: an account cancels many times more orders than it gets filled over half an
hour, at a message rate that stays below the flood threshold.

Variants: ``single_asset`` (an account active only there) and ``busy_account`` (an account that trades
normally all day on other assets, whose fills there dilute a ratio pooled over its assets).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    MINUTE_US,
    Injection,
    IntRange,
    Range,
    asset_pool,
    cover_flow,
    draw,
    draw_int,
    liquid_assets,
    passive_price,
    pick,
    pick_slot,
    scenario_rng,
    spaced_times,
    usd_scale,
    variants,
)


@variants("single_asset", busy_account={"busy_assets": (1, 3), "busy_fills_per_hour": (30, 60)})
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "single_asset",
    fills: IntRange = (2, 5),
    ratio: Range = (8, 20),
    span_min: Range = (10, 25),
    min_order_gap_s: float = 6.0,
    order_life_s: Range = (1, 20),
    fill_after_s: Range = (0.2, 0.9),
    order_notional: Range = (1_000, 5_000),
    offset_bps: Range = (1, 6),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
    busy_assets: IntRange = (0, 0),
    busy_fills_per_hour: Range = (10, 25),
    busy_notional: Range = (1_000, 5_000),
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` cancel-to-fill instances; returns their scenario ids.

    Parameters
    ----------
    fills, ratio
        Orders filled, and cancelled orders per filled one (rule: cancels / fills ≥ 6 over 30 min with
        ≥ 20 messages).
    span_min
        Minutes over which the orders are placed (stretched so consecutive orders stay at least
        ``min_order_gap_s`` apart: the account must not also look like a message flood).
    order_life_s, order_notional, offset_bps
        Lifetime, USD size and distance of each pulled order behind the venue's recent price range
        (:func:`passive_price`: a pulled order never crosses a resting quote).
    fill_after_s
        The filled orders sit at the venue price and are hit this quickly by an innocent taker.
    variant
        ``single_asset`` (these defaults) or ``busy_account`` (``busy_assets`` 1–3, 30–60 fills an hour on
        each).
    busy_assets, busy_fills_per_hour, busy_notional
        ``busy_account``: the account also trades normally all day on this many other assets (passive
        orders filled by innocent takers, a few pulled), this many fills an hour on each, of this USD size.
    asset, venue, tiers
        Pin the instrument / venue, or prefer assets of these liquidity tiers. USD knobs are multiplied
        by the asset's ``notional_scale``.
    """
    rng = scenario_rng(ctx, "cancel_to_fill", variant, "single_asset")
    ids: list[str] = []
    for _ in range(count):
        nf = draw_int(rng, fills)
        nc = int(np.ceil(nf * draw(rng, ratio)))
        n = nf + nc
        span = max(int(draw(rng, span_min) * MINUTE_US), int(n * min_order_gap_s * 1.2 * US))
        span = min(span, 28 * MINUTE_US)  # all inside one 30-min window
        a, start = pick_slot(
            ctx, rng, span + 30 * US, asset_pool(ctx, asset, tiers, liquid_assets(ctx)), ACCOUNT_MARGIN_US
        )
        v = venue or pick(rng, ctx.universe.venues)
        s = usd_scale(ctx, a)
        acct = ctx.accounts.add(Segment.HIGH_FREQUENCY, draw(rng, baseline_hourly) * s)
        inj = Injection(ctx, Typology.CANCEL_TO_FILL, a, v, [acct], variant=variant)
        cover_flow(ctx, rng, acct, a, busy_assets, busy_fills_per_hour, busy_notional)
        filled = set(rng.choice(n, size=nf, replace=False).tolist())
        gap = int(min(min_order_gap_s * US, span / (n + 1)))
        for i, t in enumerate(spaced_times(rng, start, span, n, min_gap_us=gap)):
            t = int(t)
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            notional = draw(rng, order_notional) * s
            if i in filled:
                px = ctx.price(a, v, t)
                oid = inj.new(t, acct, side, px, notional / px)
                inj.hit(rng, t + int(draw(rng, fill_after_s) * US), oid)
            else:
                life = int(draw(rng, order_life_s) * US)
                px = passive_price(ctx, a, v, side, t, life, draw(rng, offset_bps))
                oid = inj.new(t, acct, side, px, notional / px)
                inj.cancel(t + life, oid)
        ids.append(inj.finish())
    return ids
