from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules import volume_spike
from market_surveillance.rules.volume_spike import VolumeSpike, VolumeSpikeParams
from market_surveillance.testing import at, trades

H = 3600


def _steady(acct: str, hours: float, notional_per_hour: float, start: float = 0.0):
    # one $notional_per_hour trade every hour (price 100), each against a different counterparty
    return [
        {"ts": start + H * i, "buyer_id": acct, "seller_id": f"mm{acct}{i}", "qty": notional_per_hour / 100}
        for i in range(int(hours))
    ]


def _burst(acct: str, start: float, n: int, notional_each: float):
    return [
        {"ts": start + 60 * i, "buyer_id": acct, "seller_id": f"cp{acct}{i}", "qty": notional_each / 100}
        for i in range(n)
    ]


#: the ADV-share configuration (ADV-share floors instead of median-notional multiples, a history of 5 trades)
RELATIVE = VolumeSpikeParams(
    min_adv_share=0.003,
    min_baseline_adv_share=0.0015,
    min_notional_multiple=0.0,
    min_baseline_multiple=0.0,
    min_notional=500.0,
    min_baseline=100.0,
    min_prior_trades=5,
)


def _market(hours: float, ticket: float, per_hour: int = 60, price: float = 100.0, asset: str = "BTC-USD"):
    # the asset's ordinary tape: others' tickets of ``ticket`` USD set its median trade notional
    return [
        {
            "ts": 3600 * h + 3600 * i / per_hour + 7,
            "buyer_id": f"mk{i % 7}",
            "seller_id": f"mm{i % 5}",
            "qty": ticket / price,
            "price": price,
            "asset": asset,
        }
        for h in range(int(hours))
        for i in range(per_hour)
    ]


def _run(rows, params=None, ticket: float | None = 1_000.0):
    # by default a $1,000-ticket market tape: the floors are 110 x $1,000 recent, 10 x $1,000 baseline
    if ticket is not None:
        rows = [*rows, *_market(24, ticket)]
    rows = [{**r, "trade_id": f"T{i:05d}"} for i, r in enumerate(rows)]
    _, t, _ = from_arrow({"trades": trades(rows)})
    return VolumeSpike(params).run(t)


def test_volume_spike_injected_found_with_account_and_window():
    # 20 h at $10k/h, then $200k within 20 minutes: 2 h = $200k+ vs prior rate $20k per 2 h
    rows = _steady("acct", 20, 10_000) + _burst("acct", 20 * H, 20, 10_000)
    out = _run(rows)
    assert out.num_rows == 1
    r = out.to_pylist()[0]
    assert r["accounts"] == ["acct"] and r["asset"] == "BTC-USD"
    assert r["window_end"] == at(20 * H + 60 * 19)
    assert r["value"] >= 5


def test_volume_spike_clean_steady_accounts_no_alert():
    rows = _steady("a", 24, 50_000) + _steady("b", 24, 30_000, start=600)
    assert _run(rows).num_rows == 0


def test_volume_spike_just_under_ratio_or_notional_no_alert():
    # prior 12 h at $20k/h → $40k per 2 h; a 2-h total of $190k is 4.75× < 5×
    rows = _steady("acct", 20, 20_000) + _burst("acct", 20 * H, 10, 15_000)
    assert _run(rows).num_rows == 0
    # 10× its own baseline but $90k is under 0.3 % of this asset's ADV (a whale trades $2M/h): no alert;
    # the same burst on an asset whose ADV is small is large for it
    small = _steady("acct", 20, 1_000) + _burst("acct", 20 * H, 9, 10_000)
    assert _run(small + _steady("whale", 24, 2_000_000), RELATIVE).num_rows == 0
    assert (
        _run(
            small + _steady("whale", 24, 2_000_000),
            RELATIVE.replace(min_adv_share=0.0015, min_baseline_adv_share=1e-4),
        ).num_rows
        == 1
    )
    assert _run(small, RELATIVE).num_rows == 1
    assert _run(small).num_rows == 0  # default: $90k is under 110 x the asset's $1,000 median trade


def test_volume_spike_thin_token_burst_in_its_own_units_found():
    # a $0.01 token: an account trading $50/h, then $1,500 in 20 minutes (a 2,000-unit ticket size)
    rows = _steady("acct", 20, 50) + _burst("acct", 20 * H, 15, 100)
    rows = [{**r, "asset": "MICRO-USD", "price": 0.01, "qty": r["qty"] * 10_000} for r in rows]
    # its market trades $5 tickets: 110 x $5 = $550 is large for it
    tape = _market(24, 5.0, price=0.01, asset="MICRO-USD")
    out = _run(rows + tape, ticket=None)
    assert out.num_rows == 1 and out.to_pylist()[0]["asset"] == "MICRO-USD"
    assert _run(rows + tape, RELATIVE, ticket=None).num_rows == 1
    # the same burst on a tape of $20 tickets (floor $2,200) is ordinary for that token
    assert _run(rows + _market(24, 20.0, price=0.01, asset="MICRO-USD"), ticket=None).num_rows == 0


def test_volume_spike_burst_filled_passively_no_alert():
    # a market maker filled by others' burst did not decide that volume (initiated_only)
    rows = _steady("acct", 20, 10_000) + _burst("acct", 20 * H, 20, 10_000)
    passive = [{**r, "aggressor": "sell"} for r in rows]
    assert _run(passive).num_rows == 0
    assert _run(passive, VolumeSpikeParams(initiated_only=False)).num_rows == 1


def test_volume_spike_account_new_to_the_asset_no_alert():
    # one large first trade of an account has no norm of its own to be judged against
    rows = [*_steady("a", 24, 50_000), {"ts": 20 * H, "buyer_id": "new", "seller_id": "cp", "qty": 5_000}]
    assert _run(rows).num_rows == 0


def test_volume_spike_no_alert_during_warm_up():
    # the same burst in the first 12 h has no baseline to be judged against
    assert _run(_burst("acct", 3 * H, 30, 10_000)).num_rows == 0


def test_volume_spike_sensitive_vs_default_params():
    rows = _steady("acct", 20, 20_000) + _burst("acct", 20 * H, 10, 15_000)
    assert _run(rows, VolumeSpikeParams(ratio=4.0)).num_rows == 1


def test_volume_spike_invariant_to_row_order():
    rows = _steady("acct", 20, 10_000) + _burst("acct", 20 * H, 20, 10_000) + _steady("z", 24, 5_000)
    rows = [{**r, "trade_id": f"T{i:05d}"} for i, r in enumerate(rows + _market(24, 1_000.0))]
    shuffled = rows[:]
    random.Random(5).shuffle(shuffled)
    _, t1, _ = from_arrow({"trades": trades(rows)})
    _, t2, _ = from_arrow({"trades": trades(shuffled)})
    assert VolumeSpike().run(t1).equals(VolumeSpike().run(t2))


def _random_accounts(seed: int) -> list[dict]:
    """30 h of six accounts trading every ~15 min, 5 % of their trades 20x their usual size."""
    rng = random.Random(seed)
    rows = []
    for a in range(6):
        t = rng.uniform(0, 3600)
        while t < 30 * H:
            burst = rng.random() < 0.05
            rows.append(
                {
                    "ts": t,
                    "buyer_id": f"a{a}",
                    "seller_id": f"cp{rng.randrange(50)}",
                    "qty": rng.uniform(200, 2_000) * (20 if burst else 1),
                }
            )
            t += rng.expovariate(1 / 900)
    return rows


def _absolute_params(short_h: float, long_h: float) -> VolumeSpikeParams:
    """Windows of the given hours and absolute floors only, for the bounds' hypothesis tests."""
    return VolumeSpikeParams(
        short_window_s=int(short_h * H),
        long_window_s=int(long_h * H),
        min_notional_multiple=0.0,
        min_baseline_multiple=0.0,
        min_notional=50_000,
        min_baseline=10_000,
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    short_h=st.sampled_from([0.5, 1.0, 2.0, 2.5]),
    long_h=st.sampled_from([3.0, 6.5, 12.0]),
)
def test_volume_spike_hour_prefilter_drops_no_alert(seed: int, short_h: float, long_h: float):
    # the clock-hour bound is an exact superset: same alerts with and without it, whatever the windows
    rows = _random_accounts(seed)
    p = _absolute_params(short_h, long_h)
    with_filter = _run(rows, p, ticket=None)
    everyone = lambda at, _start, _p: at.select("account_id", "asset").distinct()  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(volume_spike, "_candidate_accounts", everyone)
        without = _run(rows, p, ticket=None)
    assert sorted(with_filter["alert_id"].to_pylist()) == sorted(without["alert_id"].to_pylist())
    assert with_filter.num_rows == without.num_rows


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    short_h=st.sampled_from([0.5, 2.0, 2.5]),
    long_h=st.sampled_from([3.0, 12.0]),
    since_h=st.floats(4.0, 29.0),
    span_h=st.sampled_from([0.01, 1.0, 4.0]),
)
def test_volume_spike_online_bound_drops_no_alert(
    seed: int, short_h: float, long_h: float, since_h: float, span_h: float
):
    # online (intermediates.decide_from) the exact windows run only on the pairs two bounded sums keep: an
    # exact superset of those that can fire at a trade in [since, until], so keeping every pair changes nothing
    import ibis

    from market_surveillance.rules.intermediates import DECIDE_FROM

    rows = _random_accounts(seed)
    rows = [{**r, "trade_id": f"T{i:05d}"} for i, r in enumerate(rows)]
    p = _absolute_params(short_h, long_h)
    _, t, _ = from_arrow({"trades": trades(rows)})
    day0 = int(trades([{"ts": 0.0, "buyer_id": "x", "seller_id": "y", "qty": 1.0}])["ts"][0].value)
    since = day0 + int(since_h * H * 1_000_000)
    window = ibis.memtable({"ts_us": [since], "until_us": [since + int(span_h * H * 1_000_000)]})
    online = {**t, DECIDE_FROM: window}
    bounded = VolumeSpike(p).run(online)
    everyone = lambda at, _since, _until, _p: at.select("account_id", "asset").distinct()  # noqa: E731
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(volume_spike, "_candidates_between", everyone)
        full = VolumeSpike(p).run(online)
    assert bounded.equals(full)
