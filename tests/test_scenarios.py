"""Scenario injectors: labels, tagging, tape consistency and each typology's key property.

Each property is checked against the rule thresholds of the agreed semantics (not against the
injectors' own knob ranges), on the injected rows alone: a small hand-built SimContext without
background flow.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from market_surveillance.enums import Segment, Typology
from market_surveillance.simulate.context import (
    US,
    Accounts,
    AssetSpec,
    Labels,
    PricePaths,
    SimContext,
    Tape,
    Universe,
)
from market_surveillance.simulate.scenarios import SCENARIOS, inject_all

DAY0_US = 1_767_225_600 * US  # 2026-01-01
MIN_US = 60 * US


# retail as large as the smallest real population (Population.for_trades: 300): a pump rush spreads over it
CROWD = {"retail": 300, "institutional": 10, "market_maker": 12, "proprietary": 6, "high_frequency": 6}


def make_ctx(seed: int = 7, crowd: dict[str, int] | None = None) -> SimContext:
    """A small 24-h universe (three majors, one thin token, three venues) with a small crowd per
    segment (one market maker per book)."""
    u = Universe(
        ("EXA", "EXB", "EXC"),
        (
            AssetSpec("BTC-USD", 60_000.0, 0.03, 2e7, 0.05),
            AssetSpec("ETH-USD", 3_000.0, 0.04, 1e8, 1.0),
            AssetSpec("SOL-USD", 150.0, 0.05, 4e8, 10.0),
            AssetSpec("PUMP-USD", 2.5, 0.08, 4e6, 400.0, thin=True),
        ),
        DAY0_US,
        DAY0_US + 86_400 * US,
    )
    ss = np.random.SeedSequence(seed)
    ctx = SimContext(
        u, PricePaths(u, np.random.default_rng(ss.spawn(1)[0])), Accounts(), Tape(), Labels(), ss
    )
    for s in Segment:
        n = (crowd or CROWD)[s.value]
        ctx.crowd[s.value] = [ctx.accounts.add(s, 5_000.0, prefix="B") for _ in range(n)]
    return ctx


def frames(ctx: SimContext) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(trades, orders, labels) as pandas, with integer epoch-µs ``ts_us`` / ``*_ts_us`` columns."""
    trades, orders = ctx.tape.to_tables()
    labels = ctx.labels.to_table()
    out = []
    for table, cols in ((trades, ("ts",)), (orders, ("ts",)), (labels, ("start_ts", "end_ts"))):
        df = table.to_pandas()
        for c in cols:
            df[c + "_us" if c != "ts" else "ts_us"] = table.column(c).cast(pa.int64()).to_numpy()
        out.append(df)
    return out[0], out[1], out[2]


def assert_tape_consistent(t: pd.DataFrame, o: pd.DataFrame) -> None:
    """Fills/cancels follow a `new` of the same order, filled + cancelled ≤ qty, each trade has two fills."""
    new = o[o.event == "new"]
    assert not new.order_id.duplicated().any(), "an order has two `new` events"
    first = new.set_index("order_id")
    rest = o[o.event != "new"]
    assert rest.order_id.isin(first.index).all(), "fill/cancel of an order never placed"
    assert (rest.ts_us.to_numpy() >= first.loc[rest.order_id, "ts_us"].to_numpy()).all(), (
        "event before its `new`"
    )
    for col in ("account_id", "side", "venue", "asset"):
        assert (rest[col].to_numpy() == first.loc[rest.order_id, col].to_numpy()).all(), col
    used = rest.groupby("order_id").qty.sum()
    assert (used <= first.loc[used.index, "qty"] * (1 + 1e-9)).all(), "filled + cancelled exceeds order qty"
    assert (rest[rest.event == "cancel"].groupby("order_id").size() <= 1).all(), "order cancelled twice"
    fills = o[o.event == "fill"]
    assert len(fills) == 2 * len(t), "each trade has exactly two fills"
    for order_col, side in (("buy_order_id", "buy"), ("sell_order_id", "sell")):
        m = t.merge(fills, left_on=[order_col, "ts_us"], right_on=["order_id", "ts_us"], suffixes=("", "_f"))
        assert len(m) == len(t), f"a trade lacks the fill of its {side} order"
        assert (m["side"] == side).all() and np.allclose(m.qty, m.qty_f)
    assert (t.buyer_id.to_numpy() == first.loc[t.buy_order_id, "account_id"].to_numpy()).all()
    assert (t.seller_id.to_numpy() == first.loc[t.sell_order_id, "account_id"].to_numpy()).all()


def max_in_window(ts_us: np.ndarray, window_us: int) -> int:
    """Largest number of events within any trailing window of ``window_us`` (inclusive)."""
    ts = np.sort(np.asarray(ts_us, dtype=np.int64))
    if len(ts) == 0:
        return 0
    return int((np.arange(len(ts)) - np.searchsorted(ts, ts - window_us, side="left") + 1).max())


def run(
    name: str, seed: int = 7, count: int = 3, **knobs
) -> tuple[SimContext, list[str], pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # type: ignore[no-untyped-def]
    ctx = make_ctx(seed)
    ids = SCENARIOS[name](ctx, count=count, **knobs)
    t, o, lab = frames(ctx)
    assert_tape_consistent(t, o)
    return ctx, ids, t, o, lab


def rows_of(df: pd.DataFrame, sid: str) -> pd.DataFrame:
    return df[df.scenario_id == sid].sort_values("ts_us", kind="stable")


# -- generic contract ------------------------------------------------------------------------------

TYPOLOGY = {
    "wash_trading": Typology.WASH_TRADING,
    "ping_pong": Typology.PING_PONG,
    "pump_and_dump": Typology.PUMP_AND_DUMP,
    "spoofing": Typology.SPOOFING,
    "layering": Typology.LAYERING,
    "front_running": Typology.FRONT_RUNNING,
    "message_flood": Typology.MESSAGE_FLOOD,
    "cancel_to_fill": Typology.CANCEL_TO_FILL,
    "account_deviation": Typology.ACCOUNT_DEVIATION,
    "cross_venue_shock": Typology.CROSS_VENUE_DISLOCATION,
    "collusion_ring": Typology.COLLUSION_RING,
    "position_concentration": Typology.POSITION_CONCENTRATION,
    "volume_spike": Typology.VOLUME_SPIKE,
    "marking_the_close": Typology.MARKING_THE_CLOSE,
}


PRICE_SHIFTING = {"pump_and_dump", "cross_venue_shock", "front_running", "marking_the_close"}


def test_scenarios_registry_covers_every_injected_typology() -> None:
    assert set(SCENARIOS) == set(TYPOLOGY)


@pytest.mark.parametrize("name", sorted(TYPOLOGY))
def test_scenario_each_instance_labelled_and_tagged(name: str) -> None:
    ctx, ids, t, o, lab = run(name, count=2)
    assert len(ids) == 2 and list(lab.scenario_id) == ids
    crowd = {a for pool in ctx.crowd.values() for a in pool}
    for _, row in lab.iterrows():
        assert row.typology == TYPOLOGY[name].value
        accounts = list(row.accounts)
        assert accounts and not (set(accounts) & crowd), "label accounts are the manipulators only"
        tr, od = rows_of(t, row.scenario_id), rows_of(o, row.scenario_id)
        assert len(od) > 0
        assert (tr.asset == row.asset).all() and (od.asset == row.asset).all()
        ts = np.concatenate([tr.ts_us.to_numpy(), od.ts_us.to_numpy()])
        assert ts.min() == row.start_ts_us, "label window starts at the first event"
        if name in PRICE_SHIFTING:  # ends when the market is back: the shift's decay is the scenario's doing
            assert ts.max() <= row.end_ts_us <= ts.max() + 2 * 3600 * US
        else:
            assert ts.max() == row.end_ts_us, "label window = first/last event"
        # every manipulator acts in its scenario
        acting = set(od.account_id)
        assert set(accounts) <= acting
        if pd.notna(row.venue) and name != "cross_venue_shock":
            assert (od.venue == row.venue).all()


@pytest.mark.parametrize("name", sorted(TYPOLOGY))
def test_scenario_innocent_counterparties_stay_quiet(name: str) -> None:
    """Crowd accounts used as counterparties never self-trade, never cancel and get few instructions."""
    ctx, _, t, o, _ = run(name, count=3)
    crowd = {a for pool in ctx.crowd.values() for a in pool}
    co = o[o.account_id.isin(crowd)]
    assert not (co.event == "cancel").any()
    assert not (t.buyer_id.isin(crowd) & (t.buyer_id == t.seller_id)).any()
    for _, g in co[co.event == "new"].groupby("account_id"):
        assert max_in_window(g.ts_us.to_numpy(), MIN_US) <= 10


def test_inject_all_innocent_accounts_get_no_volume_burst() -> None:
    """No non-maker innocent account gets ≥ 100,000 USD in 2 h (volume spike floor) from the scenarios,
    no innocent retail account ≥ 20,000 USD in 3 h (deviation floor), and a front-running block desk
    stays under 5× its own steady flow."""
    ctx = make_ctx(5)
    inject_all(ctx)
    t, _, lab = frames(ctx)
    labelled = {a for accts in lab.accounts for a in accts}
    tagged = t[t.scenario_id.notna()]
    accounts = (set(tagged.buyer_id) | set(tagged.seller_id)) - labelled
    crowd = {a for pool in ctx.crowd.values() for a in pool}
    desks = accounts - crowd
    for acct in accounts:
        seg = ctx.accounts.segment_of(acct)
        if seg == Segment.MARKET_MAKER.value:
            continue
        if acct in desks:  # a block desk: its block must not stand out against its own steady flow
            ts, n2h = _rolling_notional(t, acct, 2 * 3600 * US)
            _, n14h = _rolling_notional(t, acct, 14 * 3600 * US)
            warm = ts >= ctx.universe.start_us + 12 * 3600 * US
            assert (n2h / np.maximum((n14h - n2h) / 6, 10_000))[warm].max() < 5, acct
            continue
        _, n2h = _rolling_notional(tagged, acct, 2 * 3600 * US)
        assert n2h.max() < 100_000, (acct, seg)
        if seg == Segment.RETAIL.value:
            _, n3h = _rolling_notional(tagged, acct, 3 * 3600 * US)
            assert n3h.max() < 20_000, acct


def test_inject_all_reference_world_counts_per_typology_and_variant() -> None:
    ctx = make_ctx(3)
    ids = inject_all(ctx)
    _, _, lab = frames(ctx)
    expected = {ty.value: 3 for ty in TYPOLOGY.values()} | {"wash_trading": 7, "marking_the_close": 4}
    assert len(ids) == len(set(ids)) == sum(expected.values())
    assert lab.typology.value_counts().to_dict() == expected
    wash = lab[lab.typology == "wash_trading"].variant.value_counts().to_dict()
    assert wash == {"self_trade": 3, "owner_pair": 2, "device_pair": 2}
    assert lab.variant.notna().all() and lab.tier.notna().all()


def test_inject_all_counts_override_by_name() -> None:
    ctx = make_ctx(3)
    ids = inject_all(ctx, {name: 0 for name in SCENARIOS} | {"spoofing": 5})
    assert len(ids) == 5 and all(i.endswith("-spoofing") for i in ids)


def test_inject_all_unknown_name_raises() -> None:
    with pytest.raises(ValueError, match="unknown scenario"):
        inject_all(make_ctx(), {"spooofing": 1})


def test_inject_all_same_seed_same_output() -> None:
    a, b = make_ctx(11), make_ctx(11)
    inject_all(a)
    inject_all(b)
    (ta, oa), (tb, ob) = a.tape.to_tables(), b.tape.to_tables()
    assert ta.equals(tb) and oa.equals(ob)
    assert a.labels.to_table().equals(b.labels.to_table())


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_inject_all_any_seed_consistent_tape_and_windows(seed: int) -> None:
    ctx = make_ctx(seed)
    inject_all(ctx)
    t, o, lab = frames(ctx)
    assert_tape_consistent(t, o)
    assert (lab.start_ts_us >= ctx.universe.start_us).all() and (lab.end_ts_us <= ctx.universe.end_us).all()
    # untagged rows are only the all-day flow of the front-running block desks (innocent institutions)
    crowd = {a for pool in ctx.crowd.values() for a in pool}
    labelled = {a for accts in lab.accounts for a in accts}
    untagged = t[t.scenario_id.isna()]
    desks = (set(untagged.buyer_id) | set(untagged.seller_id)) - crowd
    assert not desks & labelled
    assert {ctx.accounts.segment_of(a) for a in desks} <= {Segment.INSTITUTIONAL.value}
    assert len(untagged) == 0 or untagged.buyer_id.isin(desks).sum() + untagged.seller_id.isin(
        desks
    ).sum() == len(untagged)
    # injected prices stay positive and finite after every path shift
    assert np.isfinite(t.price).all() and (t.price > 0).all()


# -- key property of each typology (rule thresholds of the agreed semantics) ----------------------


def test_wash_trading_each_instance_self_trades() -> None:
    _, _, t, _, lab = run("wash_trading")
    for _, row in lab.iterrows():
        tr = rows_of(t, row.scenario_id)
        assert len(tr) >= 1 and (tr.buyer_id == tr.seller_id).all() and set(tr.buyer_id) == set(row.accounts)


def _max_alternations(tr: pd.DataFrame, buyer: str, window_us: int) -> tuple[int, int]:
    """(trades, direction changes) of the densest window start, for trades within one pair."""
    ts = tr.ts_us.to_numpy()
    d = (tr.buyer_id.to_numpy() == buyer).astype(int)
    best = (0, 0)
    for i in range(len(ts)):
        j = np.searchsorted(ts, ts[i] + window_us, side="right")
        seg = d[i:j]
        best = max(best, (len(seg), int((np.diff(seg) != 0).sum())), key=lambda x: (x[1], x[0]))
    return best


def test_ping_pong_pair_alternates_within_300s() -> None:
    _, _, t, _, lab = run("ping_pong")
    for _, row in lab.iterrows():
        a, b = row.accounts
        tr = rows_of(t, row.scenario_id)
        assert set(tr.buyer_id) | set(tr.seller_id) == {a, b}
        n, alternations = _max_alternations(tr, a, 300 * US)
        assert n >= 6 and alternations >= 3


def _zscores(tr: pd.DataFrame, window_us: int = 1800 * US, min_obs: int = 30) -> np.ndarray:
    """MS003's z of each trade against the trailing window of earlier trades on the asset (NaN if < min_obs)."""
    ts, px = tr.ts_us.to_numpy(), tr.price.to_numpy()
    z = np.full(len(ts), np.nan)
    lo = np.searchsorted(ts, ts - window_us, side="left")
    for i in range(len(ts)):
        prior = px[lo[i] : i]
        if len(prior) >= min_obs:
            z[i] = abs(px[i] - prior.mean()) / max(prior.std(), prior.mean() * 0.001)
    return z


def test_pump_and_dump_price_spikes_and_gang_unloads() -> None:
    ctx, _, t, _, lab = run("pump_and_dump")
    for _, row in lab.iterrows():
        tr = rows_of(t, row.scenario_id)
        assert row.asset in {a.asset for a in ctx.universe.thin_assets} and pd.isna(row.venue)
        assert np.nanmax(_zscores(tr)) > 4.5 * 2, "extreme move well beyond the 4.5-sigma rule"
        first_px = tr.price.iloc[:10].mean()
        assert tr.price.max() / first_px > 1.10
        gang = set(row.accounts)
        # a crowd of innocent buyers joins the rush
        assert (~tr.buyer_id.isin(gang) & (tr.aggressor == "buy")).sum() >= 3
        # the manipulators end flat: bought then dumped everything
        net = (
            tr[tr.buyer_id.isin(gang)]
            .groupby("buyer_id")
            .qty.sum()
            .sub(tr[tr.seller_id.isin(gang)].groupby("seller_id").qty.sum(), fill_value=0)
        )
        assert np.allclose(net.to_numpy(), 0, atol=1e-3 * tr.qty.max())
        # dump sells come after the last manipulator buy's median time
        buys = tr[tr.buyer_id.isin(gang)].ts_us
        sells = tr[tr.seller_id.isin(gang)].ts_us
        assert sells.median() > buys.median()
    # the price paths were pumped market-wide (every venue) and came back
    a = lab.asset.iloc[0]
    ratios = [ctx.prices.paths[(a, v)] / ctx.prices.fair[a] for v in ctx.universe.venues]
    assert all(np.abs(r - 1).max() < 0.01 for r in ratios)


def test_spoofing_large_orders_cancelled_fast_while_trading_other_side() -> None:
    ctx, _, t, o, lab = run("spoofing")
    for _, row in lab.iterrows():
        (acct,) = row.accounts
        od = rows_of(o, row.scenario_id)
        mine = od[od.account_id == acct]
        new = mine[mine.event == "new"].set_index("order_id")
        canc = mine[mine.event == "cancel"].set_index("order_id")
        typical = ctx.universe.asset(row.asset).typical_qty
        big = new[(new.qty >= 10 * typical) & (new.qty * new.price >= 50_000)]
        assert len(big) >= 1
        fills = set(mine[mine.event == "fill"].order_id)
        hits = 0
        for oid, n in big.iterrows():
            assert oid in canc.index and oid not in fills
            life = canc.loc[oid, "ts_us"] - n.ts_us
            assert life <= 5 * US
            tr = rows_of(t, row.scenario_id)
            opp_col = "seller_id" if n.side == "buy" else "buyer_id"
            near = tr[(tr[opp_col] == acct) & ((tr.ts_us - n.ts_us).abs() <= 60 * US)]
            hits += len(near) > 0
        assert hits == len(big)


def test_layering_live_stepped_ladder_cancelled_within_90s() -> None:
    _, _, t, o, lab = run("layering")
    for _, row in lab.iterrows():
        (acct,) = row.accounts
        od = rows_of(o, row.scenario_id)
        mine = od[od.account_id == acct]
        filled = set(mine[mine.event == "fill"].order_id)
        cancels = mine[mine.event == "cancel"].set_index("order_id").ts_us
        new = mine[(mine.event == "new") & ~mine.order_id.isin(filled)].reset_index(drop=True)
        assert new.order_id.isin(cancels.index).all()
        # split into ladders: orders placed less than 30 s after the previous one
        ladder_id = (new.ts_us.diff().fillna(np.inf) > 30 * US).cumsum()
        ladders = 0
        for _, lad in new.groupby(ladder_id):
            c = cancels.loc[lad.order_id].to_numpy()
            prices = lad.price.to_numpy()
            steps = np.diff(prices)
            assert len(lad) >= 4 and len(set(prices)) == len(prices)
            assert (steps > 0).all() or (steps < 0).all(), "strictly monotonic in placement order"
            assert lad.side.nunique() == 1
            assert c.max() - lad.ts_us.min() <= 90 * US
            assert lad.ts_us.max() < c.min(), "all levels live together at some instant"
            tr = rows_of(t, row.scenario_id)
            opp_col = "seller_id" if lad.side.iloc[0] == "buy" else "buyer_id"
            assert ((tr[opp_col] == acct) & tr.ts_us.between(lad.ts_us.min(), c.max())).any()
            ladders += 1
        assert ladders >= 1


def test_front_running_enter_before_large_print_exit_with_profit() -> None:
    ctx, _, t, _, lab = run("front_running")
    for _, row in lab.iterrows():
        (x,) = row.accounts
        tr = rows_of(t, row.scenario_id).reset_index(drop=True)
        mine = tr[(tr.buyer_id == x) | (tr.seller_id == x)]
        assert len(mine) == 2
        entry, exit_ = mine.iloc[0], mine.iloc[1]
        d = "buy" if entry.buyer_id == x else "sell"
        others = tr[(tr.buyer_id != x) & (tr.seller_id != x)]
        median_notional = ctx.universe.asset(row.asset).typical_qty * entry.price
        large = others[
            (others.aggressor == d)
            & (others.price * others.qty >= max(100_000, 10 * median_notional))
            & (others.ts_us > entry.ts_us)
            & (others.ts_us <= entry.ts_us + 30 * US)
        ]
        assert len(large) == 1
        # the block comes from an innocent institution, not from the labelled front-runner
        assert ctx.accounts.segment_of(large.buyer_id.iloc[0] if d == "buy" else large.seller_id.iloc[0]) == (
            Segment.INSTITUTIONAL.value
        )
        assert (exit_.buyer_id == x) != (d == "buy"), "exit is the opposite direction"
        assert 0 < exit_.ts_us - large.ts_us.iloc[0] <= 300 * US
        sign = 1 if d == "buy" else -1
        assert sign * (exit_.price / entry.price - 1) * 1e4 >= 25


def test_message_flood_more_than_45_instructions_in_60s() -> None:
    _, _, _, o, lab = run("message_flood")
    for _, row in lab.iterrows():
        (acct,) = row.accounts
        od = rows_of(o, row.scenario_id)
        instr = od[(od.account_id == acct) & od.event.isin(["new", "cancel"])]
        assert max_in_window(instr.ts_us.to_numpy(), 60 * US) > 45
        # it still trades: not a pure cancel-to-fill pattern
        assert (od[od.account_id == acct].event == "fill").sum() >= 1


def test_message_flood_pinned_instructions_emits_at_least_that_many() -> None:
    _, _, _, o, lab = run("message_flood", count=1, instructions=(80, 80))
    (acct,) = lab.accounts.iloc[0]
    n = o[(o.account_id == acct) & o.event.isin(["new", "cancel"])]
    assert 80 <= len(n) <= 82


def test_cancel_to_fill_ratio_in_30min_without_flooding() -> None:
    _, _, _, o, lab = run("cancel_to_fill")
    for _, row in lab.iterrows():
        (acct,) = row.accounts
        mine = rows_of(o, row.scenario_id)
        mine = mine[mine.account_id == acct]
        assert mine.ts_us.max() - mine.ts_us.min() <= 1800 * US
        cancels, fills = (mine.event == "cancel").sum(), (mine.event == "fill").sum()
        assert cancels / max(fills, 1) >= 6 and len(mine) >= 20
        instr = mine[mine.event.isin(["new", "cancel"])]
        assert max_in_window(instr.ts_us.to_numpy(), 60 * US) <= 45


def _rolling_notional(tr: pd.DataFrame, acct: str, window_us: int) -> tuple[np.ndarray, np.ndarray]:
    mine = tr[(tr.buyer_id == acct) | (tr.seller_id == acct)].sort_values("ts_us")
    ts, notional = mine.ts_us.to_numpy(), (mine.price * mine.qty).to_numpy()
    cum = np.concatenate([[0.0], np.cumsum(notional)])
    lo = np.searchsorted(ts, ts - window_us, side="right")
    return ts, cum[np.arange(len(ts)) + 1] - cum[lo]


def test_account_deviation_retail_trades_far_above_baseline() -> None:
    ctx, _, t, _, lab = run("account_deviation")
    for _, row in lab.iterrows():
        (acct,) = row.accounts
        assert ctx.accounts.segment_of(acct) == Segment.RETAIL.value
        baseline = ctx.accounts.baselines[ctx.accounts.ids.index(acct)]
        _, n3h = _rolling_notional(rows_of(t, row.scenario_id), acct, 3 * 3600 * US)
        assert n3h.max() >= 12 * 3 * baseline and n3h.max() >= 20_000


def test_cross_venue_shock_vwap_spread_above_2pct() -> None:
    ctx, _, t, _, lab = run("cross_venue_shock")
    for _, row in lab.iterrows():
        tr = rows_of(t, row.scenario_id).copy()
        on_venue = tr[tr.venue == row.venue]
        assert set(on_venue.buyer_id) | set(on_venue.seller_id) >= set(row.accounts)
        tr["bucket"] = tr.ts_us // (60 * US)
        tr["pq"] = tr.price * tr.qty
        g = tr.groupby(["bucket", "venue"]).agg(pq=("pq", "sum"), q=("qty", "sum"))
        vwap = (g.pq / g.q).unstack()
        spread = (vwap.max(axis=1) - vwap.min(axis=1)) / vwap.min(axis=1)
        assert (spread[vwap.notna().sum(axis=1) >= 2] > 0.02).any()
        # only the labelled venue's path moved during the shock
        i0, i1 = ctx.prices.index(np.array([row.start_ts_us, row.end_ts_us]))
        for v in ctx.universe.venues:
            dev = np.abs(
                ctx.prices.paths[(row.asset, v)][i0:i1] / ctx.prices.fair[row.asset][i0:i1] - 1
            ).max()
            assert dev > 0.025 if v == row.venue else dev < 0.01


def test_collusion_ring_shared_fingerprint_same_direction_within_60s() -> None:
    ctx, _, t, _, lab = run("collusion_ring")
    acc = ctx.accounts
    net = pd.DataFrame({"account_id": acc.net_account, "device": acc.net_device, "subnet": acc.net_subnet})
    for _, row in lab.iterrows():
        ring = set(row.accounts)
        assert len(ring) >= 3
        mine = net[net.account_id.isin(ring)]
        assert mine.device.nunique() == 1 or mine.subnet.nunique() == 1
        tr = rows_of(t, row.scenario_id)
        side = pd.concat(
            [
                tr[tr.buyer_id.isin(ring)].assign(acct=lambda d: d.buyer_id, d="buy"),
                tr[tr.seller_id.isin(ring)].assign(acct=lambda d: d.seller_id, d="sell"),
            ]
        ).sort_values("ts_us")
        best = 0
        for _, g in side.groupby("d"):
            ts, who = g.ts_us.to_numpy(), g.acct.to_numpy()
            for i in range(len(ts)):
                j = np.searchsorted(ts, ts[i] + 60 * US, side="right")
                best = max(best, len(set(who[i:j])))
        assert best >= 3
    # the innocent background keeps one device and subnet per account
    crowd = {a for pool in ctx.crowd.values() for a in pool}
    assert net[net.account_id.isin(crowd)].device.is_unique


def test_position_concentration_holds_20pct_of_float_and_1m() -> None:
    ctx, _, t, _, lab = run("position_concentration")
    for _, row in lab.iterrows():
        (acct,) = row.accounts
        spec = ctx.universe.asset(row.asset)
        tr = rows_of(t, row.scenario_id)
        bought = tr[tr.buyer_id == acct].qty.sum() - tr[tr.seller_id == acct].qty.sum()
        opening = ctx.opening_positions[(acct, row.asset)]
        assert bought > 0 and opening > 0
        net = opening + bought
        assert net / spec.float_qty >= 0.20
        assert net * float(ctx.prices.fair[row.asset][-1]) >= 1_000_000


def test_volume_spike_two_hour_burst_after_warmup() -> None:
    ctx, _, t, _, lab = run("volume_spike")
    for _, row in lab.iterrows():
        (acct,) = row.accounts
        tr = rows_of(t, row.scenario_id)
        ts, n2h = _rolling_notional(tr, acct, 2 * 3600 * US)
        _, n14h = _rolling_notional(tr, acct, 14 * 3600 * US)
        prior_12h = n14h - n2h
        ratio = n2h / np.maximum(prior_12h / 6, 10_000)
        warm = ts >= ctx.universe.start_us + 12 * 3600 * US
        hit = warm & (ratio >= 5) & (n2h >= 100_000)
        assert hit.any()
        # outside the burst the account trades steadily: no 2-h window before the burst trips
        first_hit = ts[hit].min()
        assert not (warm & (ts < first_hit - 2 * 3600 * US) & (ratio >= 5)).any()


def test_scenario_default_strengths_vary_between_instances() -> None:
    """Defaults are drawn per instance (not one constant just over the threshold)."""
    _, _, _, o, lab = run("message_flood", count=5)
    counts = [
        int(((o.account_id == row.accounts[0]) & o.event.isin(["new", "cancel"])).sum())
        for _, row in lab.iterrows()
    ]
    assert len(set(counts)) >= 3 and min(counts) >= 60
    _, _, t, _, lab = run("account_deviation", count=5)
    totals = [float((rows_of(t, sid).price * rows_of(t, sid).qty).sum()) for sid in lab.scenario_id]
    assert max(totals) / min(totals) > 1.2


def test_spoofing_pinned_lifetime_is_respected() -> None:
    _, _, _, o, lab = run("spoofing", count=2, lifetime_s=(4.5, 4.5))
    for _, row in lab.iterrows():
        mine = rows_of(o, row.scenario_id)
        mine = mine[mine.account_id == row.accounts[0]]
        new = mine[mine.event == "new"].set_index("order_id").ts_us
        canc = mine[mine.event == "cancel"].set_index("order_id").ts_us
        assert np.allclose((canc - new.loc[canc.index]).to_numpy(), 4.5 * US, atol=1)


@functools.cache
def _shared_ctx(seed: int) -> SimContext:
    """A context only read by a test (never injected into), built once per seed."""
    return make_ctx(seed)


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2),
    minute=st.integers(0, 24 * 60 - 1),
    life_s=st.floats(0.1, 120.0),
    offset=st.floats(0.0, 20.0),
)
def test_passive_price_behind_recent_path_range(seed: int, minute: int, life_s: float, offset: float) -> None:
    """A resting order never crosses a quote made off the path in the last 20 min or during its life."""
    from market_surveillance.enums import Side
    from market_surveillance.simulate.scenarios._common import STALE_QUOTE_US, passive_price

    ctx = _shared_ctx(seed)
    t = DAY0_US + minute * MIN_US
    life = int(life_s * US)
    i0, i1 = ctx.prices.index(np.array([t - STALE_QUOTE_US, t + life]))
    path = ctx.prices.paths[("ETH-USD", "EXB")][i0 : i1 + 1]
    assert passive_price(ctx, "ETH-USD", "EXB", Side.BUY, t, life, offset) <= path.min()
    assert passive_price(ctx, "ETH-USD", "EXB", Side.SELL, t, life, offset) >= path.max()


def test_book_makers_match_background_population_books() -> None:
    """Large tickets go to the makers of the right book: the inference from the crowd's layout agrees
    with the background population (or ``SimContext.makers`` when filled)."""
    from market_surveillance.simulate.background import create_population
    from market_surveillance.simulate.context import component_rng
    from market_surveillance.simulate.scenarios._common import book_makers
    from market_surveillance.simulate.universe import Population, default_universe

    ss = np.random.SeedSequence(1)
    u = default_universe()
    ctx = SimContext(u, PricePaths(u, component_rng(ss, "prices")), Accounts(), Tape(), Labels(), ss)
    bg = create_population(ctx, Population.for_trades(3_000), ctx.rng("population"))
    for (asset, venue), ids in bg.makers.items():
        assert book_makers(ctx, asset, venue) == list(ids)
    ctx.makers = {("BTC-USD", "EXA"): ["MM-X"]}
    assert book_makers(ctx, "BTC-USD", "EXA") == ["MM-X"]


# -- variants and liquidity tiers (issue 12) -----------------------------------------------------------------


def make_tiered_ctx(seed: int = 7) -> SimContext:
    """``make_ctx`` plus a micro-cap thin token (price < $0.10, market cap $2M, small tickets) and tiers."""
    ctx = make_ctx(seed)
    specs = [
        AssetSpec("BTC-USD", 60_000.0, 0.03, 2e7, 0.05, tier="major"),
        AssetSpec("ETH-USD", 3_000.0, 0.04, 1e8, 1.0, tier="large_cap"),
        AssetSpec("SOL-USD", 150.0, 0.05, 4e8, 10.0, tier="mid_cap"),
        AssetSpec("PUMP-USD", 2.5, 0.08, 4e6, 400.0, thin=True, tier="small_cap", notional_scale=0.3),
        AssetSpec("DUST-USD", 0.02, 0.10, 1e8, 4_000.0, thin=True, tier="micro_cap", notional_scale=0.1),
    ]
    u = Universe(ctx.universe.venues, tuple(specs), ctx.universe.start_us, ctx.universe.end_us)
    ctx.universe = u
    ctx.prices = PricePaths(u, np.random.default_rng(seed))
    return ctx


def run_variant(name: str, variant: str, count: int = 2, seed: int = 7, **knobs):  # type: ignore[no-untyped-def]
    ctx = make_tiered_ctx(seed)
    ids = SCENARIOS[name](ctx, count=count, variant=variant, **knobs)
    t, o, lab = frames(ctx)
    assert_tape_consistent(t, o)
    assert list(lab.scenario_id) == ids and (lab.variant == variant).all()
    assert (lab.tier == [ctx.universe.tier_of(a) for a in lab.asset]).all()
    return ctx, t, o, lab


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_every_variant_labelled_with_its_name_and_tier(name: str) -> None:
    for variant in SCENARIOS[name].variants:
        if variant == "any_fingerprint":
            continue
        run_variant(name, variant, count=1)


def test_scenario_unknown_variant_raises() -> None:
    with pytest.raises(ValueError, match="unknown spoofing variant 'huge'"):
        SCENARIOS["spoofing"](make_ctx(), count=1, variant="huge")


def test_scenario_variant_knobs_yield_to_explicit_knobs() -> None:
    _, _, o, lab = run_variant("spoofing", "low_notional", count=1, spoof_notional=(9_000, 9_000))
    spoof = rows_of(o, lab.scenario_id[0])
    spoof = spoof[(spoof.event == "new") & (spoof.account_id == lab.accounts[0][0])]
    assert (spoof.price * spoof.qty).max() >= 8_900


def test_wash_owner_pair_one_trade_between_two_accounts_of_one_owner() -> None:
    ctx, t, _, lab = run_variant("wash_trading", "owner_pair")
    acc = ctx.accounts
    for _, row in lab.iterrows():
        a, b = row.accounts
        tr = rows_of(t, row.scenario_id)
        assert len(tr) == 1 and {tr.buyer_id.iloc[0], tr.seller_id.iloc[0]} == {a, b}
        assert acc.owner_of(a) == acc.owner_of(b)
        dev = {x: {d for y, d in zip(acc.net_account, acc.net_device, strict=True) if y == x} for x in (a, b)}
        sub = {x: {d for y, d in zip(acc.net_account, acc.net_subnet, strict=True) if y == x} for x in (a, b)}
        assert not (dev[a] & dev[b]) and not (sub[a] & sub[b]), "linked only through the owner"


def test_wash_device_pair_one_trade_between_different_owners_sharing_a_fingerprint() -> None:
    ctx, t, _, lab = run_variant("wash_trading", "device_pair", count=4)
    acc = ctx.accounts
    for _, row in lab.iterrows():
        a, b = row.accounts
        assert len(rows_of(t, row.scenario_id)) == 1 and acc.owner_of(a) != acc.owner_of(b)
        fp = {
            x: {
                (d, s)
                for y, d, s in zip(acc.net_account, acc.net_device, acc.net_subnet, strict=True)
                if y == x
            }
            for x in (a, b)
        }
        shared_dev = {d for d, _ in fp[a]} & {d for d, _ in fp[b]}
        shared_sub = {s for _, s in fp[a]} & {s for _, s in fp[b]}
        assert shared_dev or shared_sub


def test_pump_ramp_walks_price_up_25_to_40pct_with_10_to_15_buys_a_minute() -> None:
    _ctx, t, _, lab = run_variant("pump_and_dump", "ramp")
    for _, row in lab.iterrows():
        tr = rows_of(t, row.scenario_id)
        gang = set(row.accounts)
        buys = tr[(tr.aggressor == "buy") & ~tr.seller_id.isin(gang)]
        # the ramp: from the end of the quiet accumulation to the price peak
        peak = tr.loc[tr.price.idxmax()]
        ramp = buys[(buys.ts_us <= peak.ts_us) & (buys.ts_us >= peak.ts_us - 30 * MIN_US)]
        first = ramp.ts_us.min()
        per_min = len(ramp[ramp.ts_us >= first]) / ((peak.ts_us - first) / MIN_US)
        assert 8 <= per_min <= 17, per_min
        minutes = (peak.ts_us - first) / MIN_US
        assert 12 <= minutes <= 32, minutes
        base = tr[tr.ts_us < first].price.median()
        assert 0.20 <= peak.price / base - 1 <= 0.45
        # no announcement burst: never more than a couple of dozen buys in one minute
        assert max_in_window(buys.ts_us.to_numpy(), MIN_US) <= 25


def test_front_running_passive_exit_rests_and_small_profit_is_a_few_bps() -> None:
    _, t, _o, lab = run_variant("front_running", "passive_exit")
    for _, row in lab.iterrows():
        (x,) = row.accounts
        mine = rows_of(t, row.scenario_id)
        mine = mine[(mine.buyer_id == x) | (mine.seller_id == x)]
        exit_ = mine.iloc[-1]
        exit_side = "buy" if exit_.buyer_id == x else "sell"
        assert exit_.aggressor != exit_side, "the exit is filled passively"
    ctx, t, _, lab = run_variant("front_running", "small_profit")
    for _, row in lab.iterrows():
        assert ctx.universe.tier_of(row.asset) == "major"
        (x,) = row.accounts
        mine = rows_of(t, row.scenario_id)
        mine = mine[(mine.buyer_id == x) | (mine.seller_id == x)]
        entry, exit_ = mine.iloc[0], mine.iloc[-1]
        sign = 1 if entry.buyer_id == x else -1
        assert 3 <= sign * (exit_.price / entry.price - 1) * 1e4 <= 25


def test_spoofing_and_layering_low_notional_on_thin_token_small_in_dollars_large_for_the_book() -> None:
    ctx, _, o, lab = run_variant("spoofing", "low_notional")
    for _, row in lab.iterrows():
        spec = ctx.universe.asset(row.asset)
        assert spec.thin
        od = rows_of(o, row.scenario_id)
        cancelled = od[(od.event == "cancel") & (od.account_id == row.accounts[0])]
        spoofs = od[(od.event == "new") & od.order_id.isin(cancelled.order_id)]
        # at least $2k (low notional: a major's spoof is $100k+), and larger than a market maker's
        # standing quote on that book (30x typical_qty), or it would not look large to anyone
        assert spoofs.price.max() < 10 and (spoofs.price * spoofs.qty >= 1_900).all()
        assert (spoofs.qty >= 39 * spec.typical_qty).all() and (spoofs.qty <= 101 * spec.typical_qty).any()
    ctx, _, o, lab = run_variant("layering", "low_notional")
    for _, row in lab.iterrows():
        od = rows_of(o, row.scenario_id)
        cancelled = od[(od.event == "cancel") & (od.account_id == row.accounts[0])]
        ladder = od[(od.event == "new") & od.order_id.isin(cancelled.order_id)]
        per_ladder = (ladder.price * ladder.qty).sum() / max(1, len(ladder) // 4)
        assert (ladder.price * ladder.qty).max() <= 1_000 and per_ladder <= 6_500


def test_cancel_to_fill_busy_account_dilutes_pooled_ratio_not_per_asset_ratio() -> None:
    _, _t, o, lab = run_variant("cancel_to_fill", "busy_account")
    for _, row in lab.iterrows():
        (x,) = row.accounts
        win = o[(o.account_id == x) & o.ts_us.between(row.start_ts_us, row.start_ts_us + 30 * MIN_US)]
        cancels = win.event == "cancel"
        fills = win.event == "fill"
        here = win.asset == row.asset
        assert (cancels & here).sum() / max((fills & here).sum(), 1) >= 6
        assert cancels.sum() / max(fills.sum(), 1) < 6, "pooled over its assets the surge is diluted"
        assert set(o[o.account_id == x].asset) - {row.asset}, "busy on other assets"
        assert o[(o.account_id == x) & (o.asset != row.asset)].scenario_id.isna().all()


def test_marking_the_close_one_direction_before_the_fixing() -> None:
    for variant, max_window in (("ramp", 15 * MIN_US), ("last_minute", 2 * MIN_US)):
        ctx, t, _, lab = run_variant("marking_the_close", variant)
        fix = ctx.universe.end_us  # the 00:00 UTC daily close
        for _, row in lab.iterrows():
            tr = rows_of(t, row.scenario_id)
            gang = set(row.accounts)
            mine = tr[tr.buyer_id.isin(gang) | tr.seller_id.isin(gang)]
            assert len(mine) >= 3 and (mine.ts_us < fix).all() and (fix - mine.ts_us.min()) <= max_window
            sides = {("buy" if b in gang else "sell") for b in mine.buyer_id}
            assert len(sides) == 1 and (mine.aggressor == next(iter(sides))).all()
            p = ctx.prices.paths[(row.asset, row.venue)]
            i0, i1 = ctx.prices.index(np.array([mine.ts_us.min() - US, fix - US]))
            move = p[i1] / p[i0] - 1
            assert (move > 0) == (next(iter(sides)) == "buy") and abs(move) > 0.001


def test_position_concentration_low_cap_holds_a_quarter_to_a_third_of_a_micro_cap() -> None:
    ctx, t, _, lab = run_variant("position_concentration", "low_cap")
    for _, row in lab.iterrows():
        spec = ctx.universe.asset(row.asset)
        assert spec.tier == "micro_cap"
        (x,) = row.accounts
        tr = rows_of(t, row.scenario_id)
        held = ctx.opening_positions[(x, row.asset)] + tr[tr.buyer_id == x].qty.sum()
        assert 0.24 <= held / spec.float_qty <= 0.36
        assert held * spec.start_price < 1_500_000
