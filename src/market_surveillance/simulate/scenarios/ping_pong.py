"""Ping-pong: two accounts trade back and forth with each other in bursts (alternating direction)."""

from __future__ import annotations

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    Injection,
    IntRange,
    Range,
    draw,
    draw_int,
    liquid_assets,
    pick,
    pick_slot,
    spaced_times,
)


def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    bursts: IntRange = (1, 3),
    trades_per_burst: IntRange = (8, 20),
    burst_span_s: Range = (60, 240),
    burst_gap_s: Range = (120, 600),
    trade_notional: Range = (2_000, 15_000),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
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
    """
    rng = ctx.rng("scenario:ping_pong")
    ids: list[str] = []
    for _ in range(count):
        nb = draw_int(rng, bursts)
        spans = [int(draw(rng, burst_span_s) * US) for _ in range(nb)]
        gaps = [int(draw(rng, burst_gap_s) * US) for _ in range(nb)]
        a, start = pick_slot(
            ctx, rng, sum(spans) + sum(gaps), [asset] if asset else liquid_assets(ctx), ACCOUNT_MARGIN_US
        )
        v = venue or pick(rng, ctx.universe.venues)
        pair = [ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly)) for _ in range(2)]
        inj = Injection(ctx, Typology.PING_PONG, a, v, pair)
        t0 = start
        for span, gap in zip(spans, gaps, strict=True):
            n = draw_int(rng, trades_per_burst)
            first_buyer = int(rng.integers(2))
            for i, t in enumerate(spaced_times(rng, t0, span, n, min_gap_us=2 * US)):
                buyer, seller = pair[(first_buyer + i) % 2], pair[(first_buyer + i + 1) % 2]
                px = ctx.price(a, v, int(t)) * (1 + rng.normal(0, 1e-4))
                qty = draw(rng, trade_notional) / px
                if rng.random() < 0.5:
                    inj.cross(int(t), seller, buyer, Side.BUY, px, qty)
                else:
                    inj.cross(int(t), buyer, seller, Side.SELL, px, qty)
            t0 += span + gap
        ids.append(inj.finish())
    return ids
