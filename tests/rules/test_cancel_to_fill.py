from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.cancel_to_fill import CancelToFill, CancelToFillParams
from market_surveillance.testing import at, orders


def _flow(
    cancels: int,
    fills: int,
    *,
    extra_new: int = 0,
    start: float = 1_000.0,
    every: float = 10.0,
    acct: str = "c",
) -> list[dict]:
    """An account's events: ``fills`` filled orders and ``extra_new`` resting orders placed first, then
    ``cancels`` orders each cancelled 5 s after placement, one every ``every`` seconds."""
    rows: list[dict] = []
    for j in range(fills):
        oid = f"{acct}F{j}"
        rows.append({"ts": start - 300 + 10 * j, "order_id": oid, "account_id": acct})
        rows.append({"ts": start - 298 + 10 * j, "order_id": oid, "account_id": acct, "event": "fill"})
    for j in range(extra_new):
        rows.append({"ts": start - 500 + j, "order_id": f"{acct}R{j}", "account_id": acct})
    for i in range(cancels):
        oid = f"{acct}C{i}"
        rows.append({"ts": start + every * i, "order_id": oid, "account_id": acct})
        rows.append({"ts": start + every * i + 5, "order_id": oid, "account_id": acct, "event": "cancel"})
    return rows


def _maker(acct: str, offset: float) -> list[dict]:
    """A maker over two hours: an order every 20 s, the first of every four filled and the next three cancelled."""
    rows: list[dict] = []
    for i in range(360):
        oid = f"{acct}-{i}"
        rows.append({"ts": offset + 20 * i, "order_id": oid, "account_id": acct})
        event = "fill" if i % 4 == 0 else "cancel"
        rows.append({"ts": offset + 20 * i + 8, "order_id": oid, "account_id": acct, "event": event})
    return rows


# background: cancels/fills = 3 in any 30-minute window, well under 6
BACKGROUND = _maker("mm0", 0.0) + _maker("mm1", 7.0)


def _run(rows, params=None):
    _, t, _ = from_arrow({"orders": orders(rows)})
    return CancelToFill(params).run(t)


def test_cancel_to_fill_injected_found_with_expected_entity_and_window():
    out = _run(BACKGROUND + _flow(12, 1, start=3_000.0))
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["accounts"] == ["c"] and row["asset"] == "BTC-USD" and row["venue"] is None
    # 20 messages are first reached at the 9th cancel (2 fill-order events + 9 new + 9 cancels)
    assert row["window_start"] == at(3_000 + 8 * 10 + 5) and row["window_end"] == at(3_000 + 11 * 10 + 5)
    assert row["value"] == 12.0 and row["threshold"] == 6.0
    assert set(row["evidence_order_ids"]) == {f"cC{i}" for i in range(8, 12)}


def test_cancel_to_fill_clean_background_no_alert():
    assert _run(BACKGROUND).num_rows == 0


def test_cancel_to_fill_just_under_thresholds_no_alert():
    assert _run(_flow(11, 2)).num_rows == 0  # 5.5 cancels per fill
    assert _run(_flow(12, 2)).num_rows == 1  # 6.0
    assert _run(_flow(9, 0, extra_new=1)).num_rows == 0  # 19 messages
    assert _run(_flow(9, 0, extra_new=2)).num_rows == 1  # 20 messages


def test_cancel_to_fill_other_accounts_fills_do_not_count():
    other = [
        row
        for j in range(10)
        for row in (
            {"ts": 1_001 + j, "order_id": f"x{j}", "account_id": "x"},
            {"ts": 1_002 + j, "order_id": f"x{j}", "account_id": "x", "event": "fill"},
        )
    ]
    out = _run(_flow(12, 1) + other)
    assert out.num_rows == 1 and out["accounts"].to_pylist() == [["c"]]


def test_cancel_to_fill_sensitive_vs_non_sensitive_params():
    # 14 cancels one every 5 minutes (70 min) and one fill: at most 7 cancels and 16 messages in 30 min
    rows = BACKGROUND + _flow(14, 1, start=3_000.0, every=300.0)
    assert _run(rows).num_rows == 0
    assert _run(rows, CancelToFillParams(window_s=3_600)).num_rows == 1
    assert _run(rows, CancelToFillParams(min_messages=12)).num_rows == 1
    assert _run(rows, CancelToFillParams(min_messages=12, ratio=8.0)).num_rows == 0


def test_cancel_to_fill_episodes_split_by_gap():
    rows = _flow(12, 0, start=1_000.0) + _flow(12, 0, start=5_000.0)
    assert _run(rows).num_rows == 2
    assert _run(rows, CancelToFillParams(episode_gap_s=5_000)).num_rows == 1


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1))
def test_cancel_to_fill_invariant_to_row_order(seed):
    rnd = random.Random(seed)
    rows = BACKGROUND + _flow(12, 1, start=3_000.0) + _flow(15, 2, start=6_000.0, acct="d")
    expected = _run(rows)
    assert expected.num_rows == 2
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    assert _run(shuffled).equals(expected)


def _reference_hits(rows: list[dict], p: CancelToFillParams) -> list[tuple[str, float]]:
    """Brute force: (account, ts) of every cancel whose trailing window fires."""
    out = []
    for r in rows:
        if r["event"] != "cancel":
            continue
        win = [
            x
            for x in rows
            if x["account_id"] == r["account_id"] and r["ts"] - p.window_s <= x["ts"] <= r["ts"]
        ]
        cancels = sum(x["event"] == "cancel" for x in win)
        fills = sum(x["event"] == "fill" for x in win)
        if cancels / max(fills, 1) >= p.ratio and len(win) >= p.min_messages:
            out.append((r["account_id"], r["ts"]))
    return out


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b"]),
            st.integers(min_value=0, max_value=400),  # tenths of a second: many ties and bucket edges
            st.sampled_from(["new", "cancel", "cancel", "fill"]),
        ),
        min_size=1,
        max_size=60,
    )
)
def test_cancel_to_fill_bucket_prefilter_matches_brute_force(events):
    p = CancelToFillParams(window_s=6, ratio=2.0, min_messages=4, episode_gap_s=1)
    rows = [
        {"ts": ts / 10, "order_id": f"{acct}{i}", "account_id": acct, "event": ev}
        for i, (acct, ts, ev) in enumerate(events)
    ]
    hits = _reference_hits(rows, p)
    out = _run(rows, p)
    # every alert's window is bounded by firing cancels, and together the episodes hold every firing cancel
    got = {(r["accounts"][0], r["window_start"], r["window_end"]) for r in out.to_pylist()}
    for acct, ts in hits:
        assert any(a == acct and s <= at(ts) <= e for a, s, e in got)
    assert all((a, s) in {(x, at(ts)) for x, ts in hits} for a, s, _ in got)
    assert all((a, e) in {(x, at(ts)) for x, ts in hits} for a, _, e in got)


def test_cancel_to_fill_surge_on_one_asset_of_busy_account_found_on_that_asset():
    # the account fills steadily on ETH (20 fills in the window) and surges cancels on SOL only: pooled,
    # 12 cancels / 20 fills stays under 6; per asset, SOL reads 12 cancels per (floored) fill
    eth = [
        {**row, "asset": "ETH-USD", "order_id": f"e{row['order_id']}"}
        for row in _flow(0, 20, start=3_050.0, acct="c")
    ]
    sol = [{**row, "asset": "SOL-USD"} for row in _flow(12, 0, start=3_000.0, acct="c")]
    out = _run(BACKGROUND + eth + sol)
    assert out.num_rows == 1
    row = out.to_pylist()[0]
    assert row["asset"] == "SOL-USD" and row["accounts"] == ["c"]
    assert all(o.startswith("cC") for o in row["evidence_order_ids"])
