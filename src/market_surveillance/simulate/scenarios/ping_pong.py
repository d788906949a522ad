"""Ping-pong: two accounts trade back and forth with each other (alternating direction).

Variants: ``burst`` (8–20 trades within a few minutes) and ``spread_out`` (6–10 trades spread over 15–45
minutes, painting volume through the hour without a burst).
"""

from __future__ import annotations

from collections.abc import Sequence

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    Injection,
    IntRange,
    Range,
    asset_pool,
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

SPREAD_OUT = {"bursts": (1, 1), "trades_per_burst": (6, 10), "burst_span_s": (900, 2_700)}


@variants("burst", spread_out=SPREAD_OUT)
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "burst",
    bursts: IntRange = (1, 3),
    trades_per_burst: IntRange = (8, 20),
    burst_span_s: Range = (60, 240),
    burst_gap_s: Range = (120, 600),
    trade_notional: Range = (2_000, 15_000),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` ping-pong instances; returns their scenario ids.

    Parameters
    ----------
    bursts
        Bursts per instance, ``burst_gap_s`` apart.
    trades_per_burst
        Trades in one burst, each reversing the direction of the previous one (rule: ≥ 6 trades and
        ≥ 3 alternations within 300 s).
    burst_span_s
        Seconds one burst lasts (kept under the rule's 300-s window).
    trade_notional
        USD notional per trade.
    variant
        ``burst`` (these defaults) or ``spread_out`` (:data:`SPREAD_OUT`).
    asset, venue, tiers
        Pin the instrument / venue, or prefer assets of these liquidity tiers. USD knobs are multiplied
        by the asset's ``notional_scale``.
    """
    rng = scenario_rng(ctx, "ping_pong", variant, "burst")
    ids: list[str] = []
    for _ in range(count):
        nb = draw_int(rng, bursts)
        spans = [int(draw(rng, burst_span_s) * US) for _ in range(nb)]
        gaps = [int(draw(rng, burst_gap_s) * US) for _ in range(nb)]
        a, start = pick_slot(
            ctx,
            rng,
            sum(spans) + sum(gaps),
            asset_pool(ctx, asset, tiers, liquid_assets(ctx)),
            ACCOUNT_MARGIN_US,
        )
        v = venue or pick(rng, ctx.universe.venues)
        s = usd_scale(ctx, a)
        pair = [ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly) * s) for _ in range(2)]
        inj = Injection(ctx, Typology.PING_PONG, a, v, pair, variant=variant)
        t0 = start
        for span, gap in zip(spans, gaps, strict=True):
            n = draw_int(rng, trades_per_burst)
            first_buyer = int(rng.integers(2))
            for i, t in enumerate(spaced_times(rng, t0, span, n, min_gap_us=2 * US)):
                buyer, seller = pair[(first_buyer + i) % 2], pair[(first_buyer + i + 1) % 2]
                px = ctx.price(a, v, int(t)) * (1 + rng.normal(0, 1e-4))
                qty = draw(rng, trade_notional) * s / px
                if rng.random() < 0.5:
                    inj.cross(int(t), seller, buyer, Side.BUY, px, qty)
                else:
                    inj.cross(int(t), buyer, seller, Side.SELL, px, qty)
            t0 += span + gap
        ids.append(inj.finish())
    return ids
