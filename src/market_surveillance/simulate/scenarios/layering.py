"""Layering: ladders of orders at stepped prices on one side, all live together and cancelled within
90 s, while the same account trades the other side.

Variants: ``ladder`` (levels worth $5–30k each on a liquid book) and ``low_notional`` (a whole ladder
worth $2–5k on a thin instrument).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    GENUINE_REST_US,
    Injection,
    IntRange,
    Range,
    asset_pool,
    draw,
    draw_int,
    liquid_assets,
    opposite,
    passive_price,
    pick,
    pick_slot,
    random_side,
    scenario_rng,
    usd_scale,
    variants,
)

MAX_LIFETIME_S = 85.0  # whole ladder placed and cancelled inside the rule's 90-s window


LOW_NOTIONAL = {
    "level_notional": (400, 800),
    "genuine_notional": (150, 800),
    "baseline_hourly": (1_000, 5_000),
    "scale_usd": False,
    "tiers": ("micro_cap", "small_cap"),
}


@variants("ladder", low_notional=LOW_NOTIONAL)
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "ladder",
    ladders: IntRange = (2, 4),
    levels: IntRange = (4, 8),
    first_offset_bps: Range = (1, 5),
    step_bps: Range = (2, 8),
    place_gap_s: Range = (0.3, 3.0),
    hold_s: Range = (10, 45),
    ladder_gap_s: Range = (60, 300),
    level_notional: Range = (5_000, 30_000),
    genuine_notional: Range = (2_000, 10_000),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
    scale_usd: bool = True,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` layering instances; returns their scenario ids.

    Parameters
    ----------
    ladders
        Ladders per instance, ``ladder_gap_s`` apart.
    levels
        Orders per ladder, each one further from the price than the previous (rule: ≥ 4 levels,
        strictly monotonic in placement order).
    first_offset_bps, step_bps
        Distance of the first level from the venue price and between consecutive levels.
    place_gap_s, hold_s
        Seconds between placements, and how long the full ladder stays live before it is cancelled.
    level_notional
        USD notional of each ladder order.
    genuine_notional
        The opposite-side order filled by an innocent taker while the ladder is live.
    variant
        ``ladder`` (these defaults) or ``low_notional`` (:data:`LOW_NOTIONAL`).
    scale_usd
        Multiply the USD knobs by the asset's ``notional_scale`` (off for ``low_notional``).
    asset, venue, tiers
        Pin the instrument / venue, or prefer assets of these liquidity tiers.
    """
    rng = scenario_rng(ctx, "layering", variant, "ladder")
    ids: list[str] = []
    for _ in range(count):
        nl = draw_int(rng, ladders)
        gaps = [int(draw(rng, ladder_gap_s) * US) for _ in range(nl)]
        a, start = pick_slot(
            ctx,
            rng,
            sum(gaps) + nl * 90 * US,
            asset_pool(ctx, asset, tiers, liquid_assets(ctx)),
            ACCOUNT_MARGIN_US,
        )
        v = venue or pick(rng, ctx.universe.venues)
        s = usd_scale(ctx, a) if scale_usd else 1.0
        acct = ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly) * s)
        inj = Injection(ctx, Typology.LAYERING, a, v, [acct], variant=variant)
        side = random_side(rng)
        sign = 1.0 if side is Side.BUY else -1.0
        t0 = start
        for gap in gaps:
            k = draw_int(rng, levels)
            px = ctx.price(a, v, t0)
            step = draw(rng, step_bps) * 1e-4
            offsets = step * np.arange(k)
            place = t0 + np.cumsum([0] + [int(draw(rng, place_gap_s) * US) for _ in range(k - 1)])
            hold = max(1.0, min(draw(rng, hold_s), MAX_LIFETIME_S - (place[-1] - t0) / US - k * 0.5))
            cancel_at = int(place[-1]) + int(hold * US)
            # the touch-side level stays behind the venue's recent range; the rest step away from it
            top = passive_price(ctx, a, v, side, t0, cancel_at + k * US - t0, draw(rng, first_offset_bps))
            orders = [
                inj.new(int(tp), acct, side, top * (1 - sign * off), draw(rng, level_notional) * s / px)
                for tp, off in zip(place, offsets, strict=True)
            ]
            # genuine interest on the other side, filled by an innocent taker while the ladder is live
            tg = int(place[-1]) + int(rng.uniform(0.2, 0.8) * (cancel_at - place[-1]))
            pg = ctx.price(a, v, tg)
            inj.provide(
                rng,
                tg,
                acct,
                opposite(side),
                pg,
                draw(rng, genuine_notional) * s / pg,
                resting_delay_us=GENUINE_REST_US,
            )
            # pulled from the far end first, a few hundred ms apart
            for j, oid in enumerate(reversed(orders)):
                inj.cancel(cancel_at + j * int(rng.uniform(0.05, 0.5) * US), oid)
            t0 += 90 * US + gap
        ids.append(inj.finish())
    return ids
