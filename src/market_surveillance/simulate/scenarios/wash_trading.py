"""Wash trading: one account repeatedly crosses its own resting order (self-trades over minutes)."""

from __future__ import annotations

from market_surveillance.enums import Segment, Typology
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
    random_side,
    spaced_times,
)


def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    trades: IntRange = (4, 12),
    span_s: Range = (120, 900),
    trade_notional: Range = (2_000, 15_000),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
) -> list[str]:
    """Inject ``count`` wash-trading instances; returns their scenario ids.

    Parameters
    ----------
    trades
        Self-trades per instance (the self-trade rule needs one).
    span_s
        Seconds over which the instance's self-trades are spread.
    trade_notional
        USD notional of each self-trade.
    baseline_hourly
        Stored hourly notional norm of the (proprietary) washing account.
    asset, venue
        Pin the instrument / venue (default: a random liquid asset and venue per instance).
    """
    rng = ctx.rng("scenario:wash_trading")
    ids: list[str] = []
    for _ in range(count):
        n = draw_int(rng, trades)
        span = int(draw(rng, span_s) * US)
        a, start = pick_slot(ctx, rng, span, [asset] if asset else liquid_assets(ctx), ACCOUNT_MARGIN_US)
        v = venue or pick(rng, ctx.universe.venues)
        acct = ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly))
        inj = Injection(ctx, Typology.WASH_TRADING, a, v, [acct])
        for t in spaced_times(rng, start, span, n, min_gap_us=5 * US):
            px = ctx.price(a, v, int(t))
            # the account's limit order rests, then its own marketable order lifts it
            inj.cross(int(t), acct, acct, random_side(rng), px, draw(rng, trade_notional) / px)
        ids.append(inj.finish())
    return ids
