"""MS003 extreme_price_move — a print far outside the asset's trailing price distribution."""

from __future__ import annotations

import math
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from market_surveillance.enums import Typology
from market_surveillance.rules import intermediates
from market_surveillance.rules._common import MOVE_BAR_S, US, alert_rows, with_asset_venue, with_episodes
from market_surveillance.rules.base import Params, Rule, Tables, param
from market_surveillance.rules.registry import register


@dataclass(frozen=True)
class ExtremePriceMoveParams(Params):
    window_s: int = param(1800, low=1, doc="trailing window of prior prints on the asset, seconds")
    sigma: float = param(4.5, low=0.0, closed="neither", doc="z-score above which a print is extreme")
    min_obs: int = param(30, low=2, doc="prior prints required in the window before a z-score is trusted")
    min_rel_std: float = param(
        0.002, low=0.0, closed="both", doc="floor of the std as a fraction of the mean (0.002 = 20 bps)"
    )
    min_step_multiple: float = param(
        3.0,
        low=0.0,
        doc="floor of the std in the asset's typical price steps (median non-zero move between prints)",
    )
    min_window_move_multiple: float = param(
        1.0,
        low=0.0,
        doc="floor of the std in the asset's typical move over window_s (its median half-hour move, "
        "scaled by the square root of window_s / 30 min)",
    )
    episode_gap_s: int = param(600, low=1, doc="extreme prints further apart start a new episode, seconds")


def trailing_price_stats(tr: ir.Table, window_s: int) -> ir.Table:
    """``trade_id, ts, ts_us, asset, price`` plus ``n_prior``, ``mean_prior`` and ``std_prior``: count,
    mean and sample std of the asset's prints strictly before each print (order ``ts_us, trade_id``)
    within the trailing ``window_s`` seconds.

    Cumulative-sum formulation, chosen over per-row range-window aggregates after measuring them
    (1M trades, 10 assets, DuckDB, 2 threads): range-window avg+std 4.7 s (and it counts the print
    itself), running sums with the window start taken from a range-window ``min`` 7–10 s, this version
    4.4 s. Running sums ``C1 = Σq``, ``C2 = Σq²`` and the row number are taken per asset in one ordered
    pass; for every print a *query row* at ``ts_us − window`` is merged into the same ordered stream
    (sorting before prints of equal time, since the window bound is inclusive), and a running ``max``
    of the row number finds the last print before the window start; that print's ``C1`` and ``C2``
    are joined back by (asset, row number) (one running maximum instead of three: the sort is shared,
    but each maximum builds an aggregate tree of its own). Window sums are then differences of running
    sums: no range window, no self-join, no variable-offset lag, and the same plan compiles on Spark.
    Shifting by the minimum also keeps ``Σq² − (Σq)²/n`` free of cancellation.
    """
    tr = tr.select("trade_id", "ts", "ts_us", "asset", "price")
    tr = tr.mutate(_q=tr.price - tr.price.min().over(ibis.window(group_by=tr.asset)))
    order = [tr.ts_us, tr.trade_id]
    cw = ibis.cumulative_window(group_by=tr.asset, order_by=order)
    tr = tr.mutate(
        _rn=ibis.row_number().over(ibis.window(group_by=tr.asset, order_by=order)),  # 0-based
        _c1=tr._q.sum().over(cw),
        _c2=(tr._q * tr._q).sum().over(cw),
    )
    cols = tr.columns
    nullable = {c: tr[c].type().copy(nullable=True) for c in cols}  # both union sides must agree
    prints = tr.select(
        _sort=tr.ts_us,
        _kind=ibis.literal(1),
        _krn=tr._rn,
        **{c: (tr[c] if c == "asset" else ibis.null()).cast(nullable[c]) for c in cols},
    )
    queries = tr.select(
        _sort=tr.ts_us - int(window_s * US),
        _kind=ibis.literal(0),
        _krn=ibis.null("int64"),
        **{c: tr[c].cast(nullable[c]) for c in cols},
    )
    u = prints.union(queries)
    before = ibis.cumulative_window(group_by=u.asset, order_by=[u._sort, u._kind])
    u = u.mutate(_b=u._krn.max().over(before))
    q = u.filter(u._kind == 0)
    at = tr.select(_a_asset=tr.asset, _a_rn=tr._rn, _b1=tr._c1, _b2=tr._c2)
    q = q.left_join(at, [q.asset == at._a_asset, q._b == at._a_rn]).drop("_a_asset", "_a_rn")
    # prints before the window start: _b + 1 of them (0-based row number), none when _b is null
    q = q.mutate(
        n_prior=q._rn - (q._b.fill_null(-1) + 1),
        _s1=q._c1 - q._q - q._b1.fill_null(0.0),
        _s2=q._c2 - q._q * q._q - q._b2.fill_null(0.0),
    )
    n = q.n_prior.cast("float64")
    mean_q = q._s1 / n
    # sample variance of the prior prints; clipped at 0 against rounding
    var = ((q._s2 - q._s1 * mean_q) / (n - 1)).clip(lower=0)
    q = q.mutate(
        mean_prior=ibis.ifelse(q.n_prior > 0, mean_q + (q.price - q._q), ibis.null()),
        std_prior=ibis.ifelse(q.n_prior > 1, var.sqrt(), ibis.null()),
    )
    return q.select("trade_id", "ts", "ts_us", "asset", "price", "n_prior", "mean_prior", "std_prior")


@register
class ExtremePriceMove(Rule):
    """Extreme price move (z-score of a print against the asset's trailing 30-minute prices).

    What it detects
        Prints whose price lies more than ``sigma`` standard deviations from the mean of the asset's
        prints (all venues) in the trailing ``window_s`` seconds, z = |p − mean| / max(std, mean ×
        ``min_rel_std``, ``min_step_multiple`` × the asset's typical price step), once at least ``min_obs``
        prior prints are in the window. The step floor is the instrument's own: on a thin token whose
        consecutive prints differ by 30 bps a quiet half hour's std is no measure of an abnormal print.
        Nor is it on any asset whose price sat still for half an hour: the std is never below
        ``min_window_move_multiple`` × the asset's ordinary move over such a window (its median half-hour
        move, ``liquidity.move_30m_bps``, × sqrt(``window_s`` / 30 min); none with under 4 h of data). Extreme prints closer
        than ``episode_gap_s`` form one episode per asset. Implementation: running sums of price and
        price² differenced at the window start, found by merging a query row per print into the ordered
        stream (see :func:`trailing_price_stats`): per-row range-window mean/std is the measured hot spot
        at 10M trades.
    Why it is abusive
        A sudden dislocation of the traded price is the footprint of a pump (coordinated buying that
        ramps the price before the dump), of marking the close and of momentum ignition. EU MAR Annex
        I(1)(a)-(b) (securing the price at an abnormal level), Annex II 1(b) pump and dump.
    Known false positives
        Genuine news and listing events, liquidations cascading through a thin book, and fat-finger
        prints. A random-walk price that sits still for a while and then moves reaches 4.5 "sigmas" of its own
        quiet window with an ordinary move: hence the floors of the std, ``min_rel_std`` (20 bps, so a print
        must be ≥ 90 bps off the trailing mean) and the asset's own half-hour move (at 10 bps and without
        the latter, background random walks of the synthetic day fired 1–4 times per day).
    """

    rule_id = "MS003"
    name = "extreme_price_move"
    typology = Typology.PUMP_AND_DUMP
    regulatory_name = "EU MAR Annex I(1)(a)-(b): securing the price at an abnormal or artificial level"
    metric = "max_abs_z"
    threshold_param = "sigma"
    Params = ExtremePriceMoveParams
    requires = ("trades",)
    reads = ("liquidity",)
    limitations = """
        Before the half-hour move floor (issue 12): 1.0 false alert per 100k trades on clean worlds 101–102 and 4.0 on
        103–104 (mid caps' random walks reaching 4.5 "sigmas" of a quiet half hour). With it: none on
        clean worlds 101–104, and slow pump ramps (+25–40 % over 15–30 min) on small/micro caps are found
        by MS003 in 6 of 20 instances on random worlds 1–10 (11 before): MS015 pump_and_dump, built for
        ramps, finds all 20.
    """
    # the ADV / price-step norms are taken over the data in view (see docs/online.md)
    lookback = ("window_s",)

    def candidates(self, t: Tables, p: ExtremePriceMoveParams) -> ir.Table:
        tr = trailing_price_stats(t["trades"], p.window_s)
        step = intermediates.get(t, "liquidity").select("asset", "move_bps", "move_30m_bps")
        tr = tr.join(step, "asset")
        # a quiet window's std understates a coarse-ticked token's noise: never below a few of its steps
        step_floor = tr.mean_prior * tr.move_bps.fill_null(0.0) / 10_000 * p.min_step_multiple
        # nor below the asset's ordinary move over such a window: a random walk that sat still for half an
        # hour and then moves as it usually does is many "sigmas" of its quiet window, and not extreme
        horizon = math.sqrt(p.window_s / MOVE_BAR_S)
        move_floor = (
            tr.mean_prior * tr.move_30m_bps.fill_null(0.0) / 10_000 * horizon * p.min_window_move_multiple
        )
        scale = ibis.greatest(tr.std_prior, tr.mean_prior * p.min_rel_std, step_floor, move_floor)
        tr = tr.mutate(z=(tr.price - tr.mean_prior).abs() / scale, up=tr.price > tr.mean_prior)
        hits = tr.filter((tr.n_prior >= p.min_obs) & (tr.z > p.sigma))
        hits = with_episodes(hits, ["asset"], p.episode_gap_s, tiebreak="trade_id")
        g = hits.group_by(["asset", "episode"]).aggregate(
            value=hits.z.max(),
            n=hits.count(),
            n_up=hits.up.cast("int64").sum(),
            window_start=hits.ts.min(),
            window_end=hits.ts.max(),
            detected_at=hits.ts.min(),
            evidence_trade_ids=hits.trade_id.collect(),
        )
        g = with_asset_venue(g, t["trades"])
        direction = ibis.ifelse(g.n_up * 2 >= g.n, "above", "below")
        # market-level: the rule judges the asset's price, not who printed it (evidence names the trades)
        return alert_rows(
            g,
            venue=g.venue,
            value=g.value,
            score=g.value.cast("float64") / p.sigma,
            evidence_trade_ids=g.evidence_trade_ids,
            explanation=g.n.cast("string")
            + " print(s) up to "
            + g.value.round(1).cast("string")
            + " sigma, mostly "
            + direction
            + " the trailing mean",
        )
