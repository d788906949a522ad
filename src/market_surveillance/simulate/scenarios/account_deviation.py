"""Account deviation: a small retail account suddenly trades many times its stored hourly norm."""

from __future__ import annotations

import numpy as np

from market_surveillance.enums import Segment, Typology
from market_surveillance.simulate.context import SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    MINUTE_US,
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
    baseline_hourly: Range = (500, 1_500),
    multiple: Range = (20, 60),
    trades: IntRange = (8, 25),
    span_min: Range = (60, 150),
    asset: str | None = None,
) -> list[str]:
    """Inject ``count`` account-deviation instances; returns their scenario ids.

    Parameters
    ----------
    baseline_hourly
        The retail account's stored hourly notional norm (USD).
    multiple
        Notional traded in the episode as a multiple of the account's 3-h norm (3 × baseline); rule:
        ≥ 12× and ≥ 20,000 USD over 3 h (the defaults give ≥ 30,000 USD).
    trades, span_min
        Trades in the episode and the minutes they are spread over (under 3 h, so one 3-h window
        holds them all).
    """
    rng = ctx.rng("scenario:account_deviation")
    ids: list[str] = []
    for _ in range(count):
        base = draw(rng, baseline_hourly)
        total = draw(rng, multiple) * 3 * base
        n = draw_int(rng, trades)
        span = int(min(draw(rng, span_min), 170) * MINUTE_US)
        a, start = pick_slot(ctx, rng, span, [asset] if asset else liquid_assets(ctx), ACCOUNT_MARGIN_US)
        acct = ctx.accounts.add(Segment.RETAIL, base)
        inj = Injection(ctx, Typology.ACCOUNT_DEVIATION, a, None, [acct])
        notionals = total * rng.dirichlet(np.full(n, 4.0))
        for t, notional in zip(
            spaced_times(rng, start, span, n, min_gap_us=30_000_000), notionals, strict=True
        ):
            v = pick(rng, ctx.universe.venues)
            px = ctx.price(a, v, int(t))
            side = random_side(rng)
            if rng.random() < 0.7:  # mostly market orders, as a retail app sends them
                inj.take(rng, int(t), acct, side, px, notional / px, venue=v)
            else:
                inj.provide(rng, int(t), acct, side, px, notional / px, venue=v)
        ids.append(inj.finish())
    return ids
