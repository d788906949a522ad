"""Account deviation: a small retail account suddenly trades many times its stored hourly norm."""

from __future__ import annotations

from market_surveillance.enums import Segment, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    ACCOUNT_MARGIN_US,
    MINUTE_US,
    Injection,
    Range,
    draw,
    liquid_assets,
    pick,
    pick_slot,
    random_side,
    spaced_times,
    split_notional,
)


def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    baseline_hourly: Range = (500, 1_500),
    multiple: Range = (20, 60),
    ticket: Range = (2_000, 12_000),
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
    ticket, span_min
        USD size of the episode's trades (at least eight) and the minutes they are spread over (under
        3 h, so one 3-h window holds them all).
    """
    rng = ctx.rng("scenario:account_deviation")
    ids: list[str] = []
    for _ in range(count):
        base = draw(rng, baseline_hourly)
        total = draw(rng, multiple) * 3 * base
        span = int(min(draw(rng, span_min), 170) * MINUTE_US)
        a, start = pick_slot(ctx, rng, span, [asset] if asset else liquid_assets(ctx), ACCOUNT_MARGIN_US)
        acct = ctx.accounts.add(Segment.RETAIL, base)
        inj = Injection(ctx, Typology.ACCOUNT_DEVIATION, a, None, [acct])
        notionals = split_notional(rng, total, ticket, 8)
        times = spaced_times(rng, start, span, len(notionals), min_gap_us=10 * US)
        for t, notional in zip(times, notionals, strict=True):
            v = pick(rng, ctx.universe.venues)
            px = ctx.price(a, v, int(t))
            side = random_side(rng)
            if rng.random() < 0.7:  # mostly market orders, as a retail app sends them
                inj.take(rng, int(t), acct, side, px, notional / px, venue=v)
            else:
                inj.provide(rng, int(t), acct, side, px, notional / px, venue=v)
        ids.append(inj.finish())
    return ids
