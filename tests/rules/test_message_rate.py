from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.message_rate import MessageRate, MessageRateParams
from market_surveillance.testing import at, orders

# background: three accounts, each one new + one cancel every 6 s (20 instructions a minute), one hour
BACKGROUND = [
    row
    for acct in ("mm0", "mm1", "mm2")
    for i in range(600)
    for row in (
        {"ts": 6 * i + 1, "order_id": f"{acct}-{i}", "account_id": acct},
        {"ts": 6 * i + 4, "order_id": f"{acct}-{i}", "account_id": acct, "event": "cancel"},
    )
]


def _burst(n_instructions: int, start: float = 1_000.0, step: float = 0.5, acct: str = "f") -> list[dict]:
    """``n_instructions`` alternating new/cancel events of one account, ``step`` seconds apart."""
    return [
        {
            "ts": start + k * step,
            "order_id": f"{acct}{k // 2}",
            "account_id": acct,
            "event": "new" if k % 2 == 0 else "cancel",
        }
        for k in range(n_instructions)
    ]


def _run(rows, params=None):
    _, t, _ = from_arrow({"orders": orders(rows)})
    return MessageRate(params).run(t)


def test_message_rate_injected_found_with_expected_entity_and_window():
    out = _run(BACKGROUND + _burst(50))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["f"] and row["asset"] == "BTC-USD" and row["venue"] is None
    # the 46th instruction is the first over the limit; the burst's last one ends the episode
    assert row["window_start"] == at(1_000 + 45 * 0.5) and row["window_end"] == at(1_000 + 49 * 0.5)
    assert row["value"] == 50.0 and row["threshold"] == 45.0
    assert set(row["evidence_order_ids"]) == {f"f{k}" for k in range(22, 25)}


def test_message_rate_clean_background_no_alert():
    assert _run(BACKGROUND).num_rows == 0


def test_message_rate_just_under_threshold_no_alert():
    assert _run(BACKGROUND + _burst(45)).num_rows == 0
    assert _run(BACKGROUND + _burst(46)).num_rows == 1


def test_message_rate_fills_are_not_instructions():
    burst = _burst(40)
    fills = [{"ts": 1_000.1 + k, "order_id": f"f{k}", "account_id": "f", "event": "fill"} for k in range(20)]
    assert _run(BACKGROUND + burst + fills).num_rows == 0


def test_message_rate_slow_burst_and_split_accounts_no_alert():
    # 60 instructions over 118 s never put more than 31 in one minute; two accounts of 30 each are not one
    assert _run(_burst(60, step=2.0)).num_rows == 0
    assert _run(_burst(30, acct="f") + _burst(30, acct="g")).num_rows == 0


def test_message_rate_sensitive_vs_non_sensitive_params():
    rows = BACKGROUND + _burst(40, step=1.0)  # 40 instructions in 39 s
    assert _run(rows, MessageRateParams(max_messages=30)).num_rows == 1
    assert _run(rows, MessageRateParams(max_messages=45)).num_rows == 0
    assert _run(rows, MessageRateParams(max_messages=30, window_s=20)).num_rows == 0


def test_message_rate_episodes_split_by_gap():
    rows = _burst(50) + _burst(50, start=2_000.0)
    assert _run(rows).num_rows == 2
    assert _run(rows, MessageRateParams(episode_gap_s=1_200)).num_rows == 1


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_message_rate_invariant_to_row_order(seed):
    rnd = random.Random(seed)
    rows = BACKGROUND[:200] + _burst(50) + _burst(48, start=3_000.0, acct="g")
    expected = _run(rows)
    assert expected.num_rows == 2
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert _run(shuffled).equals(expected)


def test_message_rate_alert_names_the_flooded_asset_not_the_smallest():
    # the account quotes ADA-USD quietly and floods XRP-USD: the alert is on XRP-USD
    quiet = [{**r, "asset": "ADA-USD", "order_id": "q" + r["order_id"]} for r in _burst(10, step=5.0)]
    flood = [{**r, "asset": "XRP-USD"} for r in _burst(60)]
    out = _run(BACKGROUND + quiet + flood)
    assert out.num_rows == 1
    assert out.to_pylist()[0]["asset"] == "XRP-USD"


def test_message_rate_split_over_assets_counted_per_book():
    # 30 + 30 instructions a minute on two books: 60 pooled, but no single book is flooded
    a = [{**r, "asset": "ADA-USD"} for r in _burst(30, step=1.0)]
    b = [{**r, "asset": "XRP-USD", "order_id": "b" + r["order_id"]} for r in _burst(30, step=1.0)]
    assert _run(BACKGROUND + a + b).num_rows == 0
