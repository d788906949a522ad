"""Message flood: an account fires far more order instructions (new + cancel) than any human or normal
algorithm within a minute, mostly quotes that it pulls again at once.

Variants: ``single_asset`` (an account active only there) and ``busy_account`` (an account that trades
normally all day on other assets: the alert must name the asset where the flood happened).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    Injection,
    IntRange,
    Range,
    asset_pool,
    cover_flow,
    draw,
    draw_int,
    liquid_assets,
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
    instructions: IntRange = (60, 150),
    burst_s: Range = (30, 55),
    order_life_s: Range = (0.1, 0.9),
    fill_fraction: Range = (0.2, 0.35),
    order_notional: Range = (500, 3_000),
    offset_bps: Range = (1, 5),
    baseline_hourly: Range = (30_000, 120_000),
    asset: str | None = None,
    venue: str | None = None,
    busy_assets: IntRange = (0, 0),
    busy_fills_per_hour: Range = (10, 25),
    busy_notional: Range = (1_000, 5_000),
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` message-flood instances; returns their scenario ids.

    Parameters
    ----------
    instructions
        New + cancel instructions sent in the burst (rule: > 45 within 60 s). Fills are not instructions.
    burst_s
        Seconds over which the orders are placed; each lives ``order_life_s`` more (under a second, as
        a flooder's quotes do: near the price, they are gone before they could leave the book crossed),
        so every instruction falls inside one minute.
    fill_fraction
        Share of the orders an innocent taker fills instead of being cancelled: a flooder still trades,
        which keeps this typology distinct from a pure cancel-to-fill pattern.
    order_notional, offset_bps
        Size of each quote and its distance from the venue price on its own side.
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
    rng = scenario_rng(ctx, "message_flood", variant, "single_asset")
    ids: list[str] = []
    for _ in range(count):
        target = draw_int(rng, instructions)
        f = draw(rng, fill_fraction)
        n_orders = int(np.ceil(target / (2.0 - f)))
        # instructions = 2 * n_orders - n_fill >= n_orders * (2 - f) >= target
        n_fill = int(np.floor(n_orders * f))
        span = int(draw(rng, burst_s) * US)
        a, start = pick_slot(
            ctx, rng, span + 5 * US, asset_pool(ctx, asset, tiers, liquid_assets(ctx)), ACCOUNT_MARGIN_US
        )
        v = venue or pick(rng, ctx.universe.venues)
        s = usd_scale(ctx, a)
        acct = ctx.accounts.add(Segment.HIGH_FREQUENCY, draw(rng, baseline_hourly) * s)
        inj = Injection(ctx, Typology.MESSAGE_FLOOD, a, v, [acct], variant=variant)
        cover_flow(ctx, rng, acct, a, busy_assets, busy_fills_per_hour, busy_notional)
        filled = set(rng.choice(n_orders, size=n_fill, replace=False).tolist())
        for i, t in enumerate(spaced_times(rng, start, span, n_orders, min_gap_us=50_000)):
            t = int(t)
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            px = ctx.price(a, v, t) * (1 - (1 if side is Side.BUY else -1) * draw(rng, offset_bps) * 1e-4)
            oid = inj.new(t, acct, side, px, draw(rng, order_notional) * s / px)
            t_end = t + int(draw(rng, order_life_s) * US)
            if i in filled:
                inj.hit(rng, t_end, oid)
            else:
                inj.cancel(t_end, oid)
        ids.append(inj.finish())
    return ids
