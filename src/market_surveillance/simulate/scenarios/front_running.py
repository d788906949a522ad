"""Front-running: an account trades just ahead of a large aggressive print by another account (an
institution's block) and exits within minutes once the print has moved the price."""

from __future__ import annotations

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext
from market_surveillance.simulate.scenarios._common import (
    MINUTE_US,
    Injection,
    Range,
    counterparty,
    draw,
    liquid_assets,
    opposite,
    pick,
    pick_slot,
    random_side,
)


def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    entry_notional: Range = (10_000, 40_000),
    lead_s: Range = (2, 25),
    large_notional: Range = (150_000, 400_000),
    large_multiple: Range = (25, 50),
    move_bps: Range = (30, 150),
    impact_s: Range = (10, 30),
    exit_after_s: Range = (30, 240),
    hold_min: Range = (5, 15),
    fade_min: Range = (20, 40),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
) -> list[str]:
    """Inject ``count`` front-running instances; returns their scenario ids.

    Parameters
    ----------
    entry_notional
        USD size of the front-runner's entry (and exit).
    lead_s
        Seconds between the entry and the large print (rule: within 30 s).
    large_notional, large_multiple
        The large print: the larger of this USD notional and this multiple of the asset's typical trade
        (rule: ≥ 10× the median trade notional and ≥ 100,000 USD). It comes from an innocent
        institutional account lifting (or hitting) a market maker.
    move_bps, impact_s, hold_min, fade_min
        Market-wide price impact of the print: ramp to ±move_bps over ``impact_s``, hold, fade back.
    exit_after_s
        Seconds after the print at which the front-runner unwinds at the moved price (rule: within
        300 s, profit ≥ 25 bps).
    """
    rng = ctx.rng("scenario:front_running")
    u = ctx.universe
    ids: list[str] = []
    for _ in range(count):
        lead = int(draw(rng, lead_s) * US)
        ramp = int(draw(rng, impact_s) * US)
        hold = int(draw(rng, hold_min) * MINUTE_US)
        fade = int(draw(rng, fade_min) * MINUTE_US)
        a, t0 = pick_slot(ctx, rng, lead + ramp + hold + fade, [asset] if asset else liquid_assets(ctx))
        v = venue or pick(rng, u.venues)
        spec = u.asset(a)
        acct = ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly))
        inj = Injection(ctx, Typology.FRONT_RUNNING, a, v, [acct])
        d = random_side(rng)
        sign = 1.0 if d is Side.BUY else -1.0
        move = draw(rng, move_bps) * 1e-4

        # entry just ahead of the block
        p0 = ctx.price(a, v, t0)
        _, entry = inj.take(rng, t0, acct, d, p0, draw(rng, entry_notional) / p0)
        entry_qty = float(ctx.tape.order_info[entry][5])
        entry_px = float(ctx.tape.order_info[entry][4])

        # the block by an innocent institution, against a market maker, and its price impact
        t1 = t0 + lead
        p1 = ctx.price(a, v, t1) * (1 + sign * 2e-4)
        large = max(draw(rng, large_notional), draw(rng, large_multiple) * spec.typical_qty * p1)
        inst = ctx.crowd_account(rng, Segment.INSTITUTIONAL) if ctx.crowd.get("institutional") else None
        mm = ctx.crowd_account(rng, Segment.MARKET_MAKER) if ctx.crowd.get("market_maker") else None
        inst = inst or counterparty(ctx, rng, large)
        inj.cross(t1, mm or counterparty(ctx, rng, large), inst, d, p1, large / p1)
        g = u.grid_s * US
        factors = 1 + sign * move * np.concatenate(
            [
                np.linspace(0, 1, max(ramp // g, 1)),
                np.ones(max(hold // g, 1)),
                np.linspace(1, 0, max(fade // g, 1)),
            ]
        )
        ctx.prices.shift(a, None, t1, factors)

        # exit at the moved price, at least the drawn move away from the entry
        t2 = t1 + max(int(draw(rng, exit_after_s) * US), ramp + US)
        p2 = ctx.price(a, v, t2)
        target = entry_px * (1 + sign * move)
        p2 = max(p2, target) if d is Side.BUY else min(p2, target)
        inj.take(rng, t2, acct, opposite(d), p2, entry_qty)
        ids.append(inj.finish())
    return ids
