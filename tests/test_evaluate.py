from __future__ import annotations

import pandas as pd
import pyarrow as pa

from market_surveillance.alerts import ALERT_SCHEMA, alert_id
from market_surveillance.evaluate import match_pairs, score
from market_surveillance.testing import at, make_table


def _alerts(rows: list[dict]) -> pa.Table:
    full = []
    for r in rows:
        r = {
            "asset": "BTC-USD",
            "venue": "EXA",
            "accounts": [],
            "score": 1.0,
            "metric": "m",
            "value": 1.0,
            "threshold": 1.0,
            "evidence_trade_ids": [],
            "evidence_order_ids": [],
            "explanation": None,
            **r,
        }
        r["window_start"], r["window_end"] = at(r["window_start"]), at(r["window_end"])
        r["detected_at"] = r["window_end"]
        r["alert_id"] = alert_id(
            r["rule_id"], r["asset"], r["venue"], r["accounts"], r["window_start"], r["window_end"]
        )
        full.append(r)
    return pa.Table.from_pylist(full, schema=ALERT_SCHEMA)


def _labels(rows: list[dict]) -> pa.Table:
    return make_table("labels", [{"scenario_id": f"S{i}", **r} for i, r in enumerate(rows)])


def test_match_pairs_account_alert_needs_shared_account():
    alerts = _alerts(
        [
            {
                "rule_id": "MS001",
                "rule_name": "self_trade",
                "typology": "wash_trading",
                "accounts": ["x"],
                "window_start": 100,
                "window_end": 200,
            },
            {
                "rule_id": "MS001",
                "rule_name": "self_trade",
                "typology": "wash_trading",
                "accounts": ["y"],
                "window_start": 100,
                "window_end": 200,
            },
        ]
    ).to_pandas()
    labels = _labels(
        [{"typology": "wash_trading", "asset": "BTC-USD", "accounts": ["x"], "start_ts": 150, "end_ts": 160}]
    ).to_pandas()
    pairs = match_pairs(alerts, labels)
    assert pairs.values.tolist() == [[0, 0]]


def test_match_pairs_time_tolerance_edges():
    labels = _labels(
        [{"typology": "cross_venue_dislocation", "asset": "BTC-USD", "start_ts": 1000, "end_ts": 1100}]
    ).to_pandas()
    near = _alerts(
        [
            {
                "rule_id": "MS012",
                "rule_name": "cross_market_divergence",
                "typology": "x",
                "venue": None,
                "window_start": 1100 + 299,
                "window_end": 1500,
            }
        ]
    ).to_pandas()
    far = _alerts(
        [
            {
                "rule_id": "MS012",
                "rule_name": "cross_market_divergence",
                "typology": "x",
                "venue": None,
                "window_start": 1100 + 301,
                "window_end": 1500,
            }
        ]
    ).to_pandas()
    assert len(match_pairs(near, labels, tolerance_s=300)) == 1
    assert len(match_pairs(far, labels, tolerance_s=300)) == 0


def test_score_precision_counts_any_label_recall_only_answering_rules():
    alerts = _alerts(
        [
            {
                "rule_id": "MS001",
                "rule_name": "self_trade",
                "typology": "wash_trading",
                "accounts": ["x"],
                "window_start": 100,
                "window_end": 200,
            },
            {
                "rule_id": "MS001",
                "rule_name": "self_trade",
                "typology": "wash_trading",
                "accounts": ["z"],
                "window_start": 5000,
                "window_end": 5100,
            },
        ]
    )
    labels = _labels(
        [
            {
                "typology": "ping_pong",
                "asset": "BTC-USD",
                "accounts": ["x", "w"],
                "start_ts": 100,
                "end_ts": 200,
            },
            {
                "typology": "wash_trading",
                "asset": "BTC-USD",
                "accounts": ["q"],
                "start_ts": 100,
                "end_ts": 200,
            },
        ]
    )
    card = score(alerts, labels)
    assert card.precision["self_trade"]["true"] == 1
    assert card.precision["self_trade"]["false"] == 1
    assert card.precision["self_trade"]["precision"] == 0.5
    # the self-trade alert on x matches the ping-pong label, but self_trade does not answer ping_pong
    assert card.recall["ping_pong"]["detected"] == 0
    assert card.recall["wash_trading"]["detected"] == 0
    assert set(card.missed_labels) == {"S0", "S1"}
    assert len(card.unmatched_alerts) == 1


def test_score_empty_inputs():
    card = score(ALERT_SCHEMA.empty_table(), _labels([]))
    assert card.n_alerts == 0 and card.recall == {}
    assert all(p["precision"] is None for p in card.precision.values())
    assert isinstance(pd.DataFrame(card.precision).T, pd.DataFrame)


def _self_trade_alert(acct: str, start: int = 100, end: int = 200) -> dict:
    return {
        "rule_id": "MS001",
        "rule_name": "self_trade",
        "typology": "wash_trading",
        "accounts": [acct],
        "window_start": start,
        "window_end": end,
    }


def _wash_label(acct: str, variant: str | None, tier: str | None) -> dict:
    return {
        "typology": "wash_trading",
        "asset": "BTC-USD",
        "accounts": [acct],
        "start_ts": 100,
        "end_ts": 200,
        "variant": variant,
        "tier": tier,
    }


def test_score_recall_by_variant_and_tier_and_alert_rate():
    alerts = _alerts([_self_trade_alert("x"), _self_trade_alert("z", 9000, 9100)])
    labels = _labels(
        [
            _wash_label("x", "self_trade", "major"),
            _wash_label("y", "self_trade", "major"),
            _wash_label("q", "owner_pair", "micro_cap"),
            _wash_label("r", None, None),
        ]
    )
    card = score(alerts, labels, n_trades=40_000)
    assert card.recall_by_variant == {
        "wash_trading/-/-": {"labels": 1, "detected": 0, "recall": 0.0},
        "wash_trading/owner_pair/micro_cap": {"labels": 1, "detected": 0, "recall": 0.0},
        "wash_trading/self_trade/major": {"labels": 2, "detected": 1, "recall": 0.5},
    }
    assert card.extra["alerts_per_100k_trades"] == 5.0
    assert "recall_by_variant" in card.to_dict()


def test_score_labels_without_variant_columns_still_break_down():
    labels = _labels([_wash_label("x", None, None)]).drop_columns(["variant", "tier"])
    card = score(_alerts([_self_trade_alert("x")]), labels)
    assert card.recall_by_variant == {"wash_trading/-/-": {"labels": 1, "detected": 1, "recall": 1.0}}
    assert "alerts_per_100k_trades" not in card.extra


def test_robustness_pools_seeds_and_lists_every_shortfall():
    from market_surveillance.evaluate import Robustness

    world1 = score(_alerts([_self_trade_alert("x")]), _labels([_wash_label("x", "self_trade", "major")]))
    world2 = score(
        _alerts([_self_trade_alert("k", 9000, 9100)]), _labels([_wash_label("y", "self_trade", "major")])
    )
    clean = score(_alerts([_self_trade_alert("k")]), _labels([]), n_trades=10_000)
    rob = Robustness({1: world1, 2: world2}, {9: clean})
    r = rob.recall()["wash_trading/self_trade/major"]
    assert (r["labels"], r["detected"], r["recall"], r["min_seed_recall"]) == (2, 1, 0.5, 0.0)
    p = rob.precision()["self_trade"]
    assert (p["alerts"], p["true"], p["precision"]) == (2, 1, 0.5)
    assert rob.clean_rate()["alerts_per_100k_trades"] == 10.0
    short = rob.shortfalls()
    assert len(short) == 3 and short[0].startswith("recall wash_trading/self_trade/major: 1/2")
    assert rob.to_dict()["shortfalls"] == short


def test_robustness_transfer_alerts_are_those_added_to_the_same_clean_world():
    from market_surveillance.evaluate import Robustness

    clean = score(_alerts([_self_trade_alert("k")]), _labels([]), n_trades=10_000)
    with_transfers = score(
        _alerts([_self_trade_alert("k"), _self_trade_alert("m", 900, 950)]), _labels([]), n_trades=10_010
    )
    rob = Robustness({}, {9: clean}, transfers=(9, 10, with_transfers))
    assert rob.transfer_alerts() == {"self_trade": 1}
    assert rob.to_dict()["internal_transfers"] == {
        "seed": 9,
        "transfers": 10,
        "added_alerts": {"self_trade": 1},
    }


def test_match_pairs_market_level_alert_needs_a_market_moving_or_answered_label():
    alerts = _alerts(
        [
            {
                "rule_id": "MS003",
                "rule_name": "extreme_price_move",
                "typology": "pump_and_dump",
                "venue": None,
                "window_start": 100,
                "window_end": 200,
            }
        ]
    ).to_pandas()
    labels = _labels(
        [
            {"typology": "spoofing", "asset": "BTC-USD", "accounts": ["s"], "start_ts": 150, "end_ts": 160},
            {
                "typology": "marking_the_close",
                "asset": "BTC-USD",
                "accounts": ["m"],
                "start_ts": 150,
                "end_ts": 160,
            },
            {
                "typology": "pump_and_dump",
                "asset": "ETH-USD",
                "accounts": ["p"],
                "start_ts": 150,
                "end_ts": 160,
            },
        ]
    ).to_pandas()
    # the spoofer does not explain a price alert; the marking does; another asset never matches
    assert match_pairs(alerts, labels).values.tolist() == [[0, 1]]
