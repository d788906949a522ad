"""Wash trading: trades with no change of beneficial ownership.

Variants (``variant=``):

* ``self_trade`` — one account repeatedly crosses its own resting order (self-trades over minutes);
* ``owner_pair`` — two accounts of one beneficial owner (``accounts.owner_id``), on separate devices and
  subnets, match one prearranged trade: one posts a limit order, the other takes it in full seconds later;
* ``device_pair`` — the same between two accounts with different owners on record that share a device or
  an IP subnet (a nominee account: only the ``network`` table links them).
"""

from __future__ import annotations

from collections.abc import Sequence

from market_surveillance.enums import Segment, Typology
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
    random_side,
    scenario_rng,
    spaced_times,
    usd_scale,
    variants,
)

PAIR = {"trades": (1, 1)}


@variants("self_trade", owner_pair=PAIR, device_pair=PAIR)
def inject(
    ctx: SimContext,
    *,
    count: int = 3,
    variant: str = "self_trade",
    trades: IntRange = (4, 12),
    span_s: Range = (120, 900),
    trade_notional: Range = (2_000, 15_000),
    rest_s: Range = (0.2, 0.8),
    baseline_hourly: Range = (20_000, 80_000),
    asset: str | None = None,
    venue: str | None = None,
    tiers: Sequence[str] | None = None,
) -> list[str]:
    """Inject ``count`` wash-trading instances; returns their scenario ids.

    Parameters
    ----------
    variant
        ``self_trade``, ``owner_pair`` or ``device_pair`` (module docstring).
    trades
        Matched trades per instance (4–12 self-trades; one trade for the two-account variants, the
        commonest real form).
    span_s
        Seconds over which the instance's trades are spread.
    trade_notional
        USD notional of each trade (× the asset's ``notional_scale``).
    rest_s
        Two-account variants: seconds the first account's limit order rests before its partner takes it
        (under a second: at the venue price, a longer rest could cross a market maker's older quote).
    baseline_hourly
        Stored hourly notional norm of the (proprietary) washing accounts (× ``notional_scale``).
    asset, venue, tiers
        Pin the instrument / venue, or prefer assets of these liquidity tiers (default: a random liquid
        asset and venue per instance).
    """
    rng = scenario_rng(ctx, "wash_trading", variant, "self_trade")
    ids: list[str] = []
    for _ in range(count):
        n = draw_int(rng, trades)
        span = int(draw(rng, span_s) * US)
        a, start = pick_slot(
            ctx, rng, span, asset_pool(ctx, asset, tiers, liquid_assets(ctx)), ACCOUNT_MARGIN_US
        )
        v = venue or pick(rng, ctx.universe.venues)
        s = usd_scale(ctx, a)
        acct = ctx.accounts.add(Segment.PROPRIETARY, draw(rng, baseline_hourly) * s)
        pair = [acct]
        if variant == "owner_pair":
            pair.append(
                ctx.accounts.add(
                    Segment.PROPRIETARY, draw(rng, baseline_hourly) * s, owner_id=ctx.accounts.owner_of(acct)
                )
            )
        elif variant == "device_pair":
            dev = ctx.accounts.net_device[ctx.accounts.net_account.index(acct)]
            sub = ctx.accounts.net_subnet[ctx.accounts.net_account.index(acct)]
            shared = {"device_id": dev} if rng.random() < 0.5 else {"ip_subnet": sub}
            pair.append(ctx.accounts.add(Segment.RETAIL, draw(rng, baseline_hourly) * s / 10, **shared))
        inj = Injection(ctx, Typology.WASH_TRADING, a, v, pair, variant=variant)
        for t in spaced_times(rng, start, span, n, min_gap_us=5 * US):
            px = ctx.price(a, v, int(t))
            qty = draw(rng, trade_notional) * s / px
            if variant == "self_trade":
                # the account's limit order rests, then its own marketable order lifts it
                inj.cross(int(t), acct, acct, random_side(rng), px, qty)
            else:
                # one partner rests, the other takes exactly that size a few seconds later
                rest, take = (pair[0], pair[1]) if rng.random() < 0.5 else (pair[1], pair[0])
                inj.cross(
                    int(t),
                    rest,
                    take,
                    random_side(rng),
                    px,
                    qty,
                    resting_delay_us=int(draw(rng, rest_s) * US),
                )
        ids.append(inj.finish())
    return ids
