"""Message flood: an account fires far more order instructions (new + cancel) than any human or normal
algorithm within a minute, mostly quotes that it pulls again at once."""

from __future__ import annotations

import numpy as np

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
    instructions: IntRange = (60, 150),
    burst_s: Range = (30, 55),
    order_life_s: Range = (0.1, 0.9),
    fill_fraction: Range = (0.2, 0.35),
    order_notional: Range = (500, 3_000),
    offset_bps: Range = (1, 5),
    baseline_hourly: Range = (30_000, 120_000),
    asset: str | None = None,
    venue: str | None = None,
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
    """
    rng = ctx.rng("scenario:message_flood")
    ids: list[str] = []
    for _ in range(count):
        target = draw_int(rng, instructions)
        f = draw(rng, fill_fraction)
        n_orders = int(np.ceil(target / (2.0 - f)))
        # instructions = 2 * n_orders - n_fill >= n_orders * (2 - f) >= target
        n_fill = int(np.floor(n_orders * f))
        span = int(draw(rng, burst_s) * US)
        a, start = pick_slot(
            ctx, rng, span + 5 * US, [asset] if asset else liquid_assets(ctx), ACCOUNT_MARGIN_US
        )
        v = venue or pick(rng, ctx.universe.venues)
        acct = ctx.accounts.add(Segment.HIGH_FREQUENCY, draw(rng, baseline_hourly))
        inj = Injection(ctx, Typology.MESSAGE_FLOOD, a, v, [acct])
        filled = set(rng.choice(n_orders, size=n_fill, replace=False).tolist())
        for i, t in enumerate(spaced_times(rng, start, span, n_orders, min_gap_us=50_000)):
            t = int(t)
            side = Side.BUY if rng.random() < 0.5 else Side.SELL
            px = ctx.price(a, v, t) * (1 - (1 if side is Side.BUY else -1) * draw(rng, offset_bps) * 1e-4)
            oid = inj.new(t, acct, side, px, draw(rng, order_notional) / px)
            t_end = t + int(draw(rng, order_life_s) * US)
            if i in filled:
                inj.hit(rng, t_end, oid)
            else:
                inj.cancel(t_end, oid)
        ids.append(inj.finish())
    return ids
