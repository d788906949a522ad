"""Helpers shared by the scenario injectors.

Every knob of an injector is a ``(low, high)`` range; each instance draws its own value from it with
:func:`draw` / :func:`draw_int`, so instances vary and none sits just over a rule threshold. Passing
``(x, x)`` pins a knob (used by tests and by anyone reproducing a borderline case).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from market_surveillance.enums import Segment, Side, Typology
from market_surveillance.simulate.context import US, SimContext

MINUTE_US = 60 * US
HOUR_US = 3600 * US

Range = tuple[float, float]
IntRange = tuple[int, int]


def draw(rng: np.random.Generator, bounds: Range) -> float:
    """A uniform draw from ``bounds`` (inclusive of a pinned ``(x, x)``)."""
    lo, hi = bounds
    return float(lo) if hi <= lo else float(rng.uniform(lo, hi))


def draw_int(rng: np.random.Generator, bounds: IntRange) -> int:
    """A uniform integer draw from ``bounds``, both ends included."""
    lo, hi = int(bounds[0]), int(bounds[1])
    return lo if hi <= lo else int(rng.integers(lo, hi + 1))


def sig(x: float, digits: int = 6) -> float:
    """Round to ``digits`` significant digits, so prices and sizes look like exchange values."""
    if x == 0 or not np.isfinite(x):
        return float(x)
    return float(round(x, digits - 1 - int(np.floor(np.log10(abs(x))))))


def opposite(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def random_side(rng: np.random.Generator) -> Side:
    return Side.BUY if rng.random() < 0.5 else Side.SELL


def pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def spaced_times(
    rng: np.random.Generator, start_us: int, span_us: int, n: int, min_gap_us: int = US
) -> np.ndarray:
    """``n`` increasing times in ``(start_us, start_us + span_us]`` at least ``min_gap_us`` apart."""
    free = max(int(span_us) - n * int(min_gap_us), 0)
    gaps = rng.dirichlet(np.ones(n + 1))[:n] * free + min_gap_us
    return (start_us + np.cumsum(gaps)).astype(np.int64)


# Background market makers quote off the venue path as it was at their last refresh, which can be up
# to ~20 minutes old on a sparse book: an order meant to rest untouched has to stay behind every
# price the path took over that span (and over its own life), or it would cross a stale quote.
STALE_QUOTE_US = 20 * MINUTE_US
# an order priced at the venue price and filled this soon never leaves a crossed book for long
GENUINE_REST_US = 800_000


def passive_price(
    ctx: SimContext, asset: str, venue: str, side: Side, ts_us: int, life_us: int, offset_bps: float
) -> float:
    """A limit price for an order that rests without trading (spoof, ladder level, pulled quote).

    A bid goes ``offset_bps`` below the lowest path price of the last :data:`STALE_QUOTE_US` and of the
    order's life, an offer the same distance above the highest: it can neither cross a background
    quote (all of them are quoted off the path within that span, on the far side of it) nor an
    opposite order of the same account priced the same way.
    """
    i0, i1 = (int(i) for i in ctx.prices.index(np.array([ts_us - STALE_QUOTE_US, ts_us + life_us])))
    path = ctx.prices.paths[(asset, venue)][i0 : i1 + 1]
    if side is Side.BUY:
        return float(path.min()) * (1 - offset_bps * 1e-4)
    return float(path.max()) * (1 + offset_bps * 1e-4)


def liquid_assets(ctx: SimContext) -> list[str]:
    """Assets with a deep book (majors); the thin token is reserved for pump & dump and concentration."""
    names = [a.asset for a in ctx.universe.assets if not a.thin]
    return names or [a.asset for a in ctx.universe.assets]


def thin_assets(ctx: SimContext) -> list[str]:
    names = [a.asset for a in ctx.universe.thin_assets]
    return names or [min(ctx.universe.assets, key=lambda a: a.float_qty * a.start_price).asset]


def variants(
    default: str, **table: dict[str, Any]
) -> Callable[[Callable[..., list[str]]], Callable[..., list[str]]]:
    """Declare an injector's variants: ``default`` runs with the injector's own keyword defaults, every
    other variant with the knob values of ``table[name]`` (explicit keywords of the caller still win).

    The wrapped injector takes ``variant=`` and exposes ``.variants`` (names, default first) and
    ``.variant_knobs``; the injector body receives the variant name for its label and RNG stream.
    """
    names = (default, *table)

    def deco(fn: Callable[..., list[str]]) -> Callable[..., list[str]]:
        @functools.wraps(fn)
        def wrapper(ctx: SimContext, *, variant: str = default, **knobs: Any) -> list[str]:
            if variant not in names:
                raise ValueError(
                    f"unknown {fn.__module__.rsplit('.', 1)[-1]} variant {variant!r}; known: {', '.join(names)}"
                )
            return fn(ctx, variant=variant, **{**table.get(variant, {}), **knobs})

        wrapper.variants = names  # type: ignore[attr-defined]
        wrapper.variant_knobs = {default: {}, **table}  # type: ignore[attr-defined]
        return wrapper

    return deco


def scenario_rng(ctx: SimContext, name: str, variant: str, default_variant: str) -> np.random.Generator:
    """The injector's own RNG; a non-default variant gets a stream of its own, so adding or removing a
    variant never changes the instances of another."""
    return ctx.rng(f"scenario:{name}" if variant == default_variant else f"scenario:{name}:{variant}")


def asset_pool(
    ctx: SimContext, asset: str | None, tiers: Sequence[str] | None, default: list[str]
) -> list[str]:
    """Candidate assets of an injection: the pinned one, else those of the given liquidity tiers (when the
    universe has any), else the injector's default pool."""
    if asset:
        return [asset]
    if tiers:
        names = [a.asset for a in ctx.universe.assets if ctx.universe.tier_of(a.asset) in set(tiers)]
        if names:
            return names
    return default


def usd_scale(ctx: SimContext, asset: str) -> float:
    """Multiplier of an injector's USD knobs on ``asset``: its ``notional_scale`` (1 for the majors), so a
    scenario on a thin token trades tickets of that token's size, not a major's."""
    return float(ctx.universe.asset(asset).notional_scale)


def busy_flow(
    ctx: SimContext,
    rng: np.random.Generator,
    account: str,
    assets: Sequence[str],
    fills_per_hour: float,
    notional: Range,
    cancel_share: float,
    avoid: tuple[int, int] | None = None,
) -> None:
    """An account's ordinary all-day activity on ``assets`` (untagged, like any innocent flow): passive
    orders at the venue price that an innocent taker fills a moment later, plus a share of orders pulled
    after a while. It is the cover of an account whose abuse happens on another asset."""
    u = ctx.universe
    for a in assets:
        s = usd_scale(ctx, a)
        n = int(rng.poisson(fills_per_hour * (u.end_us - u.start_us) / HOUR_US))
        times = np.sort(rng.integers(u.start_us + MINUTE_US, u.end_us - 2 * MINUTE_US, n))
        for t in times:
            t = int(t)
            v = pick(rng, u.venues)
            side = random_side(rng)
            px = sig(ctx.price(a, v, t))
            qty = sig(draw(rng, notional) * s / px)
            if rng.random() < cancel_share:
                life = int(rng.uniform(20, 120) * US)
                oid = ctx.tape.new(
                    t, v, a, account, side, sig(passive_price(ctx, a, v, side, t, life, 5.0)), qty
                )
                ctx.tape.cancel(t + life, oid)
                continue
            cp = counterparty(ctx, rng, px * qty, a, v)
            ctx.tape.cross(
                t + GENUINE_REST_US,
                v,
                a,
                account,
                cp,
                opposite(side),
                px,
                qty,
                resting_delay_us=GENUINE_REST_US,
            )


def cover_flow(
    ctx: SimContext,
    rng: np.random.Generator,
    acct: str,
    asset: str,
    n_assets: IntRange,
    fills_per_hour: Range,
    notional: Range,
) -> None:
    """The all-day cover flow (:func:`busy_flow`) of an account on ``n_assets`` assets other than ``asset``."""
    k = draw_int(rng, n_assets)
    others = [x.asset for x in ctx.universe.assets if x.asset != asset]
    if k and others:
        chosen = [others[int(i)] for i in rng.choice(len(others), size=min(k, len(others)), replace=False)]
        busy_flow(ctx, rng, acct, chosen, draw(rng, fills_per_hour), notional, cancel_share=0.1)


def reserve(ctx: SimContext, asset: str, start_us: int, end_us: int, margin_us: int) -> bool:
    """Reserve ``[start_us, end_us]`` on ``asset`` for an injection at a fixed time, if it is free."""
    for a, rs, re in ctx.reserved:
        if a == asset and not (end_us + margin_us < rs or start_us > re + margin_us):
            return False
    ctx.reserved.append((asset, start_us, end_us))
    return True


ACCOUNT_MARGIN_US = 5 * MINUTE_US
MARKET_MARGIN_US = 30 * MINUTE_US


def pick_slot(
    ctx: SimContext,
    rng: np.random.Generator,
    duration_us: int,
    assets: Sequence[str],
    margin_us: int = MARKET_MARGIN_US,
) -> tuple[str, int]:
    """An asset (tried in random order) and a free, reserved start time on it for ``duration_us``.

    Scenarios that move an asset's price keep the default wide margin from other injections on the
    asset; per-account scenarios, which leave the market alone, pass :data:`ACCOUNT_MARGIN_US` so that
    three instances of every typology fit in the part of the day after the rules' warm-up. When the
    preferred assets are full, the other assets of the universe are tried; a pinned asset
    (``assets=[x]``) is therefore a preference, not a guarantee.
    """
    others = [a.asset for a in ctx.universe.assets if a.asset not in assets]
    # preferred assets first (random order), then any other asset rather than failing outright
    for group in (list(assets), others):
        for i in rng.permutation(len(group)):
            try:
                return group[int(i)], ctx.free_slot(rng, group[int(i)], int(duration_us), margin_us=margin_us)
            except ValueError:
                continue
    raise ValueError(f"no free slot of {duration_us / US:.0f}s left on any asset")


LARGE_TICKET_USD = 20_000.0  # tickets from here on go to the book's market makers only
MID_TICKET_USD = 5_000.0  # tickets from here on go to market makers, sometimes institutions
SMALL_TICKET_USD = 2_000.0  # only tickets below this may go to retail accounts


def book_makers(ctx: SimContext, asset: str, venue: str | None) -> list[str]:
    """Market makers quoting ``asset`` on ``venue`` (on any venue when ``venue`` is None).

    Uses :attr:`SimContext.makers` when the background population filled it; otherwise infers the
    books from the crowd's market makers, which the population creates book by book (asset-major,
    then venue) in equal groups; if that layout does not hold, every market maker is returned.
    """
    u = ctx.universe
    venues = u.venues if venue is None else (venue,)
    if ctx.makers:
        ids = [m for v in venues for m in ctx.makers.get((asset, v), [])]
        if ids:
            return ids
    pool = ctx.crowd.get(Segment.MARKET_MAKER.value, [])
    n_books = len(u.assets) * len(u.venues)
    if not pool or len(pool) % n_books:
        return list(pool)
    k = len(pool) // n_books
    a = [x.asset for x in u.assets].index(asset)
    return [pool[(a * len(u.venues) + u.venues.index(v)) * k + j] for v in venues for j in range(k)]


def counterparty(
    ctx: SimContext,
    rng: np.random.Generator,
    notional: float,
    asset: str | None = None,
    venue: str | None = None,
) -> str:
    """A fresh random innocent background account able to take the other side of ``notional`` USD.

    Large tickets go to the market makers of the book (``asset``/``venue``: they turn over millions a
    day, so one ticket does not make them look like a volume spike); mid-sized ones to market makers
    or institutions; only small ones may go to retail accounts, so that no retail account is pushed
    over its baseline. Small tickets are spread over the whole crowd so that no innocent account gets
    a burst of instructions from one scenario.
    """
    if notional >= LARGE_TICKET_USD and asset is not None:
        makers = book_makers(ctx, asset, venue)
        if makers:
            return makers[int(rng.integers(len(makers)))]
    if notional >= MID_TICKET_USD:
        # mostly the makers (deep books, millions a day), sometimes an institution resting a bid/offer
        segments = (Segment.MARKET_MAKER,) * 4 + (Segment.INSTITUTIONAL,)
    elif notional >= SMALL_TICKET_USD:
        segments = (Segment.MARKET_MAKER, Segment.INSTITUTIONAL)
    else:
        segments = (Segment.MARKET_MAKER, Segment.RETAIL, Segment.INSTITUTIONAL)
    pools = [s for s in segments if ctx.crowd.get(s.value)]
    if not pools:
        pools = [Segment(s) for s, ids in ctx.crowd.items() if ids]
    if not pools:
        raise ValueError("SimContext.crowd has no background accounts to trade against")
    return ctx.crowd_account(rng, pools[int(rng.integers(len(pools)))])


def split_notional(
    rng: np.random.Generator, total: float, per_trade: Range, min_trades: int = 1
) -> np.ndarray:
    """``total`` USD cut into tickets of roughly ``per_trade`` (random sizes, at least ``min_trades``)."""
    n = max(int(np.ceil(total / draw(rng, per_trade))), min_trades)
    return total * rng.dirichlet(np.full(n, 4.0))


class Injection:
    """One scenario instance: its ``labels`` row plus tape helpers that tag every row with the scenario id
    and track the first/last event time, which become the label's ``start_ts`` / ``end_ts``."""

    def __init__(
        self,
        ctx: SimContext,
        typology: Typology,
        asset: str,
        venue: str | None,
        accounts: list[str],
        variant: str | None = None,
    ) -> None:
        self.ctx = ctx
        self.asset = asset
        self.venue = venue
        self.scenario_id = ctx.labels.add(
            typology, asset, venue, list(accounts), 0, 0, variant=variant, tier=ctx.universe.tier_of(asset)
        )
        self._row = ctx.labels.rows[-1]
        self.first: int | None = None
        self.last: int | None = None

    def _seen(self, ts_us: int) -> None:
        t = int(ts_us)
        self.first = t if self.first is None else min(self.first, t)
        self.last = t if self.last is None else max(self.last, t)

    def new(
        self, ts_us: int, account: str, side: Side, price: float, qty: float, venue: str | None = None
    ) -> int:
        self._seen(ts_us)
        v = venue or self.venue
        assert v is not None, "venue needed for market-wide injections"
        return self.ctx.tape.new(
            int(ts_us), v, self.asset, account, side, sig(price), sig(qty), self.scenario_id
        )

    def cancel(self, ts_us: int, order: int, remaining_qty: float | None = None) -> None:
        self._seen(ts_us)
        self.ctx.tape.cancel(int(ts_us), order, remaining_qty, self.scenario_id)

    def trade(
        self,
        ts_us: int,
        buy_order: int,
        sell_order: int,
        qty: float,
        price: float | None = None,
        aggressor: Side = Side.BUY,
    ) -> None:
        self._seen(ts_us)
        self.ctx.tape.trade(
            int(ts_us),
            buy_order,
            sell_order,
            sig(qty),
            None if price is None else sig(price),
            aggressor,
            self.scenario_id,
        )

    def cross(
        self,
        ts_us: int,
        resting_account: str,
        aggressor_account: str,
        aggressor: Side,
        price: float,
        qty: float,
        venue: str | None = None,
        resting_delay_us: int = 200_000,
    ) -> tuple[int, int]:
        """A complete trade (resting limit order shortly before, marketable order, two fills)."""
        v = venue or self.venue
        assert v is not None, "venue needed for market-wide injections"
        self._seen(ts_us - resting_delay_us)
        self._seen(ts_us)
        return self.ctx.tape.cross(
            int(ts_us),
            v,
            self.asset,
            resting_account,
            aggressor_account,
            aggressor,
            sig(price),
            sig(qty),
            self.scenario_id,
            resting_delay_us,
        )

    def take(
        self,
        rng: np.random.Generator,
        ts_us: int,
        account: str,
        side: Side,
        price: float,
        qty: float,
        venue: str | None = None,
    ) -> tuple[int, int]:
        """``account`` aggresses on ``side`` against a fresh innocent resting counterparty."""
        cp = counterparty(self.ctx, rng, price * qty, self.asset, venue or self.venue)
        return self.cross(ts_us, cp, account, side, price, qty, venue)

    def provide(
        self,
        rng: np.random.Generator,
        ts_us: int,
        account: str,
        side: Side,
        price: float,
        qty: float,
        venue: str | None = None,
        resting_delay_us: int = 200_000,
    ) -> tuple[int, int]:
        """``account`` rests on ``side`` and a fresh innocent counterparty aggresses into it."""
        cp = counterparty(self.ctx, rng, price * qty, self.asset, venue or self.venue)
        return self.cross(ts_us, account, cp, opposite(side), price, qty, venue, resting_delay_us)

    def hit(self, rng: np.random.Generator, ts_us: int, order: int, qty: float | None = None) -> int:
        """A fresh innocent account aggresses into the resting ``order`` (fully, or ``qty``); returns its order."""
        venue, _, _, side_code, price, order_qty = self.ctx.tape.order_info[order]
        side = Side.BUY if side_code == 0 else Side.SELL
        q = order_qty if qty is None else qty
        cp = counterparty(self.ctx, rng, price * q, self.asset, venue)
        aggr = self.new(ts_us, cp, opposite(side), price, q, venue=venue)
        buy, sell = (order, aggr) if side is Side.BUY else (aggr, order)
        self.trade(ts_us, buy, sell, q, price, aggressor=opposite(side))
        return aggr

    def finish(self, accounts: list[str] | None = None, market_until_us: int | None = None) -> str:
        """Fix the label window to the first/last emitted event (and optionally its accounts).

        ``market_until_us``: a scenario that shifted the price path labels the market's disturbance up to
        the end of that shift (a pump's decay, a dislocation's ramp back), not only its own last print: a
        price alert during the decay is the scenario's doing.
        """
        if self.first is None or self.last is None:
            raise ValueError(f"scenario {self.scenario_id} emitted no events")
        self._row["start_ts"] = self.first
        end = self.last if market_until_us is None else max(self.last, int(market_until_us))
        self._row["end_ts"] = min(end, self.ctx.universe.end_us)
        if accounts is not None:
            self._row["accounts"] = sorted(accounts)
        return self.scenario_id
