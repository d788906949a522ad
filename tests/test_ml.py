"""Behavioural anomaly ranking (issue 5): detector contract, features, explanations, MS014."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.io.canonical import from_arrow
from market_surveillance.ml import (
    FEATURES,
    AnomalyDetector,
    MLAnomaly,
    account_auc,
    account_features,
    score_accounts,
    write_scores,
)
from market_surveillance.ml.features import peer_labels, peer_normalize
from market_surveillance.ml.rule import MLAnomalyParams
from market_surveillance.testing import empty_dataset, make_table, orders, trades

# ---------------------------------------------------------------------------------------------
# Peer groups: a segment's own norm, not the majority's
# ---------------------------------------------------------------------------------------------


def _segments(seed: int) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """300 retail-like rows, 20 market-maker-like rows shifted far on every feature (their normal), and
    3 retail rows planted as outliers on two features; returns features, segments, planted flags."""
    rng = np.random.default_rng(seed)
    cols = [f"f{i}" for i in range(5)]
    retail = rng.normal(0.0, 1.0, size=(300, 5))
    retail[:3, :2] += 6.0
    mm = rng.normal(12.0, 1.0, size=(20, 5))
    X = pd.DataFrame(np.vstack([retail, mm]), columns=cols, index=[f"A{i:03d}" for i in range(320)])
    seg = pd.Series(["retail"] * 300 + ["market_maker"] * 20, index=X.index)
    planted = np.zeros(320, dtype=bool)
    planted[:3] = True
    return X, seg, planted


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_peer_groups_rank_planted_outliers_above_a_whole_normal_segment(seed: int):
    X, seg, planted = _segments(seed)
    plain = AnomalyDetector(random_state=0).fit(X).decision_scores_
    peer = AnomalyDetector(random_state=0).fit(peer_normalize(X, seg)).decision_scores_
    top3 = lambda s: set(np.argsort(-s)[:3])  # noqa: E731
    assert top3(peer) == set(np.flatnonzero(planted))
    assert not top3(plain) <= set(np.flatnonzero(planted))  # without peers the segment itself stands out


def test_peer_normalize_centres_each_segment_and_pools_small_ones():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 100.0]}, index=list("abcdefg"))
    seg = pd.Series(["r", "r", "r", "m", "m", "m", "tiny"], index=X.index)
    Z = peer_normalize(X, seg, min_group=3)
    assert Z["a"].tolist() == [-1.0, 0.0, 1.0, -10.0, 0.0, 10.0, 100.0 - 10.0]  # tiny: population median
    assert peer_labels(seg, 3).tolist() == ["r"] * 3 + ["m"] * 3 + ["__all__"]
    Zl = peer_normalize(X, seg, log_features=["a"], min_group=3)
    assert Zl.loc["b", "a"] == 0.0 and Zl.loc["a", "a"] == pytest.approx(np.log1p(1.0) - np.log1p(2.0))


def test_peer_normalize_weighted_centre_follows_the_segments_activity_not_its_head_count():
    # 3 established desks trading 6 assets with 1,000 events each, 5 newcomers on one asset with 10 each:
    # the unweighted median is a newcomer's, the activity-weighted one the desks'
    X = pd.DataFrame({"assets": [6.0, 6.0, 7.0, 1.0, 1.0, 1.0, 1.0, 1.0]}, index=list("abcdefgh"))
    seg = pd.Series(["prop"] * 8, index=X.index)
    w = pd.Series([1000.0] * 3 + [10.0] * 5, index=X.index)
    assert peer_normalize(X, seg, min_group=3)["assets"].tolist()[:3] == [5.0, 5.0, 6.0]
    Zw = peer_normalize(X, seg, min_group=3, weights=w)
    assert Zw["assets"].tolist() == [0.0, 0.0, 1.0, -5.0, -5.0, -5.0, -5.0, -5.0]
    # equal weights give the plain median
    same = peer_normalize(X, seg, min_group=3, weights=pd.Series(1.0, index=X.index))
    assert same["assets"].tolist() == peer_normalize(X, seg, min_group=3)["assets"].tolist()


# ---------------------------------------------------------------------------------------------
# Detector: PyOD-style template (generated data, known contamination, fixed seed)
# ---------------------------------------------------------------------------------------------


def _planted(seed: int, n: int = 400, contamination: float = 0.05, d: int = 6):
    """Gaussian inliers and uniform outliers far out (PyOD's generate_data recipe), labels 1 = outlier."""
    rng = np.random.default_rng(seed)
    n_out = int(n * contamination)
    inliers = rng.normal(0.0, 1.0, size=(n - n_out, d))
    sign = rng.choice([-1.0, 1.0], size=(n_out, d))
    outliers = sign * rng.uniform(3.0, 6.0, size=(n_out, d))
    X = np.vstack([inliers, outliers])
    y = np.r_[np.zeros(n - n_out), np.ones(n_out)]
    perm = rng.permutation(n)
    return X[perm], y[perm]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("model", ["iforest", "ecod", "lof"])
def test_detector_planted_outliers_shapes_contamination_and_auc_floor(model: str, seed: int):
    X, y = _planted(seed)
    det = AnomalyDetector(model=model, contamination=0.05, random_state=0)
    assert det.fit(X) is det
    assert det.decision_scores_.shape == (len(X),)
    assert det.labels_.shape == (len(X),)
    assert set(np.unique(det.labels_)) <= {0, 1}
    # the threshold is the (1 - contamination) quantile: at most that share is labelled, give or take ties
    assert abs(det.labels_.mean() - 0.05) <= 2 / len(X)
    assert roc_auc_score(y, det.decision_scores_) >= 0.9
    X_new, y_new = _planted(seed + 100)
    assert roc_auc_score(y_new, det.decision_function(X_new)) >= 0.9
    assert det.predict(X_new).shape == (len(X_new),)


def test_detector_same_seed_same_scores_other_seed_differs():
    X, _ = _planted(3)
    a = AnomalyDetector(random_state=7).fit(X).decision_scores_
    b = AnomalyDetector(random_state=7).fit(X).decision_scores_
    c = AnomalyDetector(random_state=8).fit(X).decision_scores_
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_detector_decision_function_on_training_data_matches_decision_scores():
    X, _ = _planted(4)
    det = AnomalyDetector(n_estimators=50).fit(X)
    np.testing.assert_allclose(det.decision_function(X), det.decision_scores_, rtol=1e-9, atol=1e-12)


def test_detector_init_stores_params_untouched_and_clone_works():
    det = AnomalyDetector(model="nope", contamination=7, n_estimators=33)  # no validation in __init__
    assert det.model == "nope" and det.contamination == 7
    assert det.get_params()["n_estimators"] == 33
    twin = clone(AnomalyDetector(contamination=0.1, n_estimators=20))
    assert twin.get_params() == AnomalyDetector(contamination=0.1, n_estimators=20).get_params()
    assert twin.set_params(contamination=0.2).contamination == 0.2


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"model": "no_such_model"}, "model"),
        ({"model": "../iforest"}, "model"),
        ({"contamination": 0.0}, "contamination"),
        ({"contamination": 0.6}, "contamination"),
        ({"contamination": "0.1"}, "contamination"),
        ({"random_state": -1}, "random_state"),
        ({"random_state": 1.5}, "random_state"),
        ({"log_features": "all"}, "log_features"),
        ({"scale": "yes"}, "scale"),
    ],
)
def test_detector_bad_param_fit_raises_sklearn_message(kwargs: dict, name: str):
    X, _ = _planted(0, n=50)
    with pytest.raises(
        ValueError, match=rf"The '{name}' parameter of AnomalyDetector must be .* Got .* instead\."
    ):
        AnomalyDetector(**kwargs).fit(X)


def test_detector_nan_input_or_unfitted_raises():
    X, _ = _planted(0, n=50)
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        AnomalyDetector().fit(X)
    with pytest.raises(RuntimeError, match="not fitted"):
        AnomalyDetector().decision_function(np.zeros((2, 2)))


def test_detector_log_features_auto_picks_heavy_tailed_columns_only():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"heavy": rng.lognormal(0, 3, 500), "normal": rng.normal(0, 1, 500)})
    det = AnomalyDetector(n_estimators=20).fit(df)
    assert det.log_columns_ == ["heavy"]
    assert list(det.feature_names_in_) == ["heavy", "normal"]


# ---------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------


def _tables(data: dict[str, pa.Table]):
    return from_arrow(data)[1]


def test_features_known_small_tables_give_expected_values():
    tr = trades(
        [
            {"ts": 0, "buyer_id": "a", "seller_id": "b", "aggressor": "buy", "price": 100.0, "qty": 2.0},
            {"ts": 10, "buyer_id": "a", "seller_id": "b", "aggressor": "sell", "price": 100.0, "qty": 1.0},
            {"ts": 20, "buyer_id": "c", "seller_id": "a", "aggressor": "sell", "price": 100.0, "qty": 1.0},
            {"ts": 30, "buyer_id": "a", "seller_id": "a", "aggressor": "buy", "price": 100.0, "qty": 1.0},
        ]
    )
    od = orders(
        [
            {"ts": 0, "order_id": "o1", "account_id": "a", "event": "new", "qty": 1.0},
            {"ts": 2, "order_id": "o1", "account_id": "a", "event": "cancel", "qty": 1.0},
            {"ts": 5, "order_id": "o2", "account_id": "a", "event": "new", "qty": 1.0},
            {"ts": 25, "order_id": "o2", "account_id": "a", "event": "cancel", "qty": 1.0},
            {"ts": 30, "order_id": "o3", "account_id": "a", "event": "new", "qty": 4.0},
            {"ts": 31, "order_id": "o3", "account_id": "a", "event": "fill", "qty": 4.0},
            {"ts": 40, "order_id": "o4", "account_id": "b", "event": "new", "qty": 1.0, "venue": "EXB"},
        ]
    )
    acc = make_table(
        "accounts",
        [{"account_id": x, "baseline_hourly_notional": 50.0} for x in ("a", "b", "c", "idle")],
    )
    net = make_table(
        "network",
        [
            {"account_id": "a", "device_id": "d1", "ip_subnet": "s1"},
            {"account_id": "b", "device_id": "d1", "ip_subnet": "s2"},
            {"account_id": "c", "device_id": "d3", "ip_subnet": "s1"},
            {"account_id": "idle", "device_id": "d4", "ip_subnet": "s4"},
        ],
    )
    pos = make_table("positions", [{"account_id": "a", "asset": "BTC-USD", "net_qty": -250_000.0}])
    assets = make_table("assets", [{"asset": "BTC-USD", "float_qty": 1_000_000.0}])
    f = account_features(
        _tables(
            {"trades": tr, "orders": od, "accounts": acc, "network": net, "positions": pos, "assets": assets}
        )
    )
    assert list(f.columns) == list(FEATURES)
    assert list(f.index) == ["a", "b", "c", "idle"]
    a = f.loc["a"]
    assert a["trade_count"] == 4  # the self-trade is one trade
    assert a["notional"] == pytest.approx(500.0)
    assert a["order_count"] == 3
    assert a["cancel_ratio"] == pytest.approx(2.0)  # 2 cancels / 1 fill
    assert a["quick_cancel_share"] == pytest.approx(1 / 3)  # o1 cancelled after 2 s
    assert a["cancel_latency_median_s"] == pytest.approx(11.0)  # median of 2 s and 20 s
    assert a["msg_rate_peak"] == 5  # 3 new + 2 cancel within 60 s; the fill is no instruction
    assert a["self_trade_share"] == pytest.approx(0.25)
    # b twice, c once: share 2/3 and HHI 5/9, each normalised by what 3 trades force, (x - 1/3) / (2/3)
    assert a["top_counterparty_share"] == pytest.approx(0.5)
    assert a["counterparty_hhi"] == pytest.approx(1 / 3)
    assert a["aggressor_share"] == pytest.approx(0.75)  # trades 1 and 3 and the self-trade
    assert a["venue_count"] == 1 and a["asset_count"] == 1
    assert a["position_share"] == pytest.approx(0.25)
    assert a["busiest_hour_share"] == pytest.approx(1.0)
    assert a["baseline_deviation"] == pytest.approx(500.0 / 50.0)
    assert a["shared_network_accounts"] == 2  # b by device, c by subnet
    assert f.loc["b", "venue_count"] == 2
    assert f.loc["b", "aggressor_share"] == pytest.approx(0.5)
    # no activity: zeros, except the neutral (population median) cancel latency
    idle = f.loc["idle"].drop("cancel_latency_median_s")
    assert (idle == 0).all()
    assert f.loc["idle", "cancel_latency_median_s"] == pytest.approx(11.0)


def test_features_empty_tables_give_empty_frame_with_all_columns():
    f = account_features(_tables(empty_dataset()))
    assert f.empty
    assert list(f.columns) == list(FEATURES)


# ---------------------------------------------------------------------------------------------
# An account that hides under every rule threshold but is anomalous across several features
# ---------------------------------------------------------------------------------------------

SNEAKY = "sneaky"


def _population(seed: int, n_normal: int = 60) -> dict[str, pa.Table]:
    """Ordinary retail accounts (random counterparties, few messages, cancels < fills, baselines that match
    their activity) plus one account that stays under each rule threshold on several behaviours at once:
    40 instructions in a minute (MS009: > 45), cancels/fills = 5 (MS010: ≥ 6), peak hour 10× its baseline
    (MS007: 12× over 3 h and ≥ 20,000 USD), 15 % of float (MS008: 20 %), one counterparty only but always
    buying (MS002 needs alternation), one price level (MS011), small orders (MS005: ≥ 50,000 USD), a
    device shared with one account (MS013: clusters of ≥ 3)."""
    rng = np.random.default_rng(seed)
    names = [f"n{i:03d}" for i in range(n_normal)]
    day = 86_400.0
    tr_rows, od_rows = [], []
    oid = 0
    for _ in range(n_normal * 15):
        b, s = rng.choice(n_normal, size=2, replace=False)
        ts = float(rng.uniform(0, day))
        qty = float(rng.lognormal(0.0, 0.4))
        price = float(100.0 * (1 + rng.normal(0, 0.0005)))
        aggr = "buy" if rng.random() < 0.5 else "sell"
        tr_rows.append(
            {
                "ts": ts,
                "buyer_id": names[b],
                "seller_id": names[s],
                "aggressor": aggr,
                "price": price,
                "qty": qty,
            }
        )
        taker = names[b] if aggr == "buy" else names[s]
        side = aggr
        od_rows += [
            {
                "ts": ts - 0.5,
                "order_id": f"o{oid}",
                "account_id": taker,
                "side": side,
                "qty": qty,
                "price": price,
            },
            {"ts": ts, "order_id": f"o{oid}", "account_id": taker, "event": "fill", "side": side, "qty": qty},
        ]
        oid += 1
    for _ in range(n_normal * 4):  # some resting orders cancelled after minutes, never quickly
        who = names[int(rng.integers(n_normal))]
        ts = float(rng.uniform(0, day - 900))
        qty = float(rng.lognormal(0.0, 0.4))
        od_rows += [
            {"ts": ts, "order_id": f"o{oid}", "account_id": who, "qty": qty},
            {
                "ts": ts + float(rng.uniform(60, 900)),
                "order_id": f"o{oid}",
                "account_id": who,
                "event": "cancel",
            },
        ]
        oid += 1
    # the sneaky account, all inside one clock hour (39,600 .. 43,200 s)
    t0 = 40_000.0
    for k in range(20):  # 20 new + 20 cancels in 50 s = 40 instructions in the busiest minute
        od_rows += [
            {"ts": t0 + 2.5 * k, "order_id": f"s{k}", "account_id": SNEAKY, "qty": 3.0},
            {
                "ts": t0 + 2.5 * k + 1.0,
                "order_id": f"s{k}",
                "account_id": SNEAKY,
                "event": "cancel",
                "qty": 3.0,
            },
        ]
    for k in range(20, 25):  # 5 more cancelled orders, spread out: 25 cancels in all
        ts = t0 + 300.0 * (k - 19)
        od_rows += [
            {"ts": ts, "order_id": f"s{k}", "account_id": SNEAKY, "qty": 3.0},
            {"ts": ts + 1.5, "order_id": f"s{k}", "account_id": SNEAKY, "event": "cancel", "qty": 3.0},
        ]
    for k in range(25, 30):  # 5 fills first, always buying from the same account: every trailing 30 min
        ts = t0 - 50.0 * (30 - k)  # of cancels then has cancels / fills <= 25 / 5 = 5
        od_rows += [
            {"ts": ts - 0.5, "order_id": f"s{k}", "account_id": SNEAKY, "qty": 2.0},
            {"ts": ts, "order_id": f"s{k}", "account_id": SNEAKY, "event": "fill", "qty": 2.0},
        ]
        tr_rows.append({"ts": ts, "buyer_id": SNEAKY, "seller_id": names[0], "aggressor": "buy", "qty": 2.0})
    tr_rows.sort(key=lambda r: r["ts"])
    od_rows.sort(key=lambda r: r["ts"])
    tr_t, od_t = trades(tr_rows), orders(od_rows)
    # baselines match realised activity: total notional over the day's 24 hours, times a little slack
    notional = pd.Series(0.0, index=[*names, SNEAKY])
    tdf = tr_t.to_pandas()
    for col in ("buyer_id", "seller_id"):
        notional = notional.add((tdf["price"] * tdf["qty"]).groupby(tdf[col]).sum(), fill_value=0.0)
    base = (notional / 24.0 * rng.uniform(1.5, 3.0, size=len(notional))).to_dict()
    base[SNEAKY] = 1000.0 / 10.0  # its peak hour (5 × 2 × 100 USD) is 10× its stored norm
    accounts = make_table(
        "accounts", [{"account_id": a, "baseline_hourly_notional": float(v)} for a, v in base.items()]
    )
    net_rows = [{"account_id": a, "device_id": f"d-{a}", "ip_subnet": f"s-{a}"} for a in names]
    net_rows.append({"account_id": SNEAKY, "device_id": f"d-{names[1]}", "ip_subnet": "s-sneaky"})
    pos_rows = [
        {"account_id": a, "asset": "BTC-USD", "net_qty": float(rng.normal(0, 0.01)) * 1_000_000}
        for a in names
    ]
    pos_rows.append({"account_id": SNEAKY, "asset": "BTC-USD", "net_qty": 150_000.0})
    return {
        "trades": tr_t,
        "orders": od_t,
        "accounts": accounts,
        "network": make_table("network", net_rows),
        "positions": make_table("positions", pos_rows),
        "assets": make_table("assets", [{"asset": "BTC-USD", "float_qty": 1_000_000.0}]),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ml_account_hiding_under_every_rule_ranked_in_top_decile(seed: int):
    data = _population(seed)
    scores = score_accounts(_tables(data))
    f = scores.set_index("account_id")
    # the planted account is really under the thresholds the rules use
    assert f.loc[SNEAKY, "msg_rate_peak"] == 40
    assert f.loc[SNEAKY, "cancel_ratio"] == pytest.approx(5.0)
    assert f.loc[SNEAKY, "baseline_deviation"] == pytest.approx(10.0)
    assert f.loc[SNEAKY, "position_share"] < 0.20
    rank = int(f.loc[SNEAKY, "rank"])
    assert rank <= 0.1 * len(scores), f"rank {rank} of {len(scores)}"
    assert set(scores["rank"]) == set(range(1, len(scores) + 1))


def test_ml_account_hiding_under_every_rule_no_other_rule_alerts_on_it():
    from market_surveillance.rules.registry import all_rules

    data = _population(0)
    tables = _tables(data)
    hit = {}
    for cls in all_rules():
        if cls is MLAnomaly:
            continue
        alerts = cls().run(tables)
        named = {a for accs in alerts["accounts"].to_pylist() for a in (accs or [])}
        if SNEAKY in named:
            hit[cls.name] = alerts.num_rows
    assert hit == {}
    ml = MLAnomaly().run(tables)
    assert SNEAKY in {a for accs in ml["accounts"].to_pylist() for a in accs}


# ---------------------------------------------------------------------------------------------
# MS014 rule, explanations, score files, AUC
# ---------------------------------------------------------------------------------------------


def test_ml_rule_alerts_one_per_flagged_account_with_explanation_and_evidence():
    tables = _tables(_population(1))
    p = MLAnomalyParams(contamination=0.05, max_evidence=3)
    alerts = MLAnomaly(p).run(tables)
    assert alerts.schema.equals(ALERT_SCHEMA)
    assert alerts.num_rows >= 1
    rows = alerts.to_pylist()
    assert all(len(r["accounts"]) == 1 for r in rows)
    assert len({r["accounts"][0] for r in rows}) == len(rows)
    # same threshold for every alert, every score above it
    assert len({r["threshold"] for r in rows}) == 1
    assert all(r["score"] > r["threshold"] and r["value"] == r["score"] for r in rows)
    sneaky = next(r for r in rows if r["accounts"] == [SNEAKY])
    assert sneaky["evidence_order_ids"] == ["s22", "s23", "s24"]  # the 3 most recent orders
    assert len(sneaky["evidence_trade_ids"]) == 3
    assert sneaky["window_end"] > sneaky["window_start"]
    # "feature=value (median m)" for the top features
    assert sneaky["explanation"].startswith("rank ")
    assert "(peer median " in sneaky["explanation"]
    assert any(name in sneaky["explanation"] for name in ("msg_rate_peak=40/min", "quick_cancel_share="))


def test_ml_rule_too_few_accounts_or_empty_gives_no_alerts():
    _, tables, _ = from_arrow(empty_dataset())
    assert MLAnomaly().run(tables).num_rows == 0
    small = _population(0, n_normal=10)
    out = MLAnomaly(MLAnomalyParams(min_accounts=50)).run(_tables(small))
    assert out.num_rows == 0 and out.schema.equals(ALERT_SCHEMA)


def test_ml_rule_candidates_match_run_and_asset_params_refused():
    tables = _tables(_population(2))
    rule = MLAnomaly(MLAnomalyParams(n_estimators=50))  # fewer trees: SHAP's set-up cost grows with them
    cand = rule.candidates(tables, rule.params).to_pyarrow()
    assert cand.num_rows == rule.run(tables).num_rows
    with pytest.raises(ValueError, match="per-asset"):
        MLAnomaly(asset_params={"BTC-USD": MLAnomalyParams()})


def test_ml_rule_other_pyod_model_by_name_runs():
    p = MLAnomalyParams(model="ecod", threshold="quantile", contamination=0.05)
    alerts = MLAnomaly(p).run(_tables(_population(0)))
    assert alerts.num_rows >= 1
    assert all("(peer median " in e for e in alerts["explanation"].to_pylist())


def test_ml_rule_without_peer_groups_explains_against_population_median():
    alerts = MLAnomaly(MLAnomalyParams(peer_groups=False, n_estimators=50)).run(_tables(_population(0)))
    assert alerts.num_rows >= 1
    texts = alerts["explanation"].to_pylist()
    assert all("(median " in e and "peer median" not in e for e in texts)


def test_ml_write_scores_round_trip_and_account_auc(tmp_path):
    data = _population(0)
    scores = score_accounts(_tables(data), MLAnomalyParams(n_estimators=50))
    csv, parquet = write_scores(scores, tmp_path)
    back = pd.read_parquet(parquet)
    assert list(back["account_id"]) == list(scores["account_id"])
    assert pd.read_csv(csv).shape[0] == len(scores)
    labels = make_table(
        "labels",
        [
            {
                "scenario_id": "S1",
                "typology": "spoofing",
                "asset": "BTC-USD",
                "accounts": [SNEAKY],
                "start_ts": 0,
                "end_ts": 10,
            }
        ],
    )
    assert account_auc(back, labels) >= 0.9
    with pytest.raises(ValueError, match="both"):
        account_auc(back[back["account_id"] != SNEAKY], labels)


def test_ml_rule_budget_robust_threshold_and_daily_cap():
    tables = _tables(_population(0))
    out = MLAnomaly().execute(tables)
    alerts, table = out.alerts, out.side["ml_scores"]
    scores = np.asarray(table["score"].to_numpy())
    med = np.median(scores)
    mad = 1.4826 * np.median(np.abs(scores - med))
    # alerts only outside the fitted normal range, every account still scored
    assert all(s > med + 9.0 * mad for s in alerts["score"].to_pylist())
    assert len(scores) >= alerts.num_rows
    capped = MLAnomaly(MLAnomalyParams(robust_z=1.0, max_alerts_per_day=2)).run(tables)
    assert capped.num_rows <= 2 * 2  # two a day; the population spans at most two calendar days
    wide = MLAnomaly(MLAnomalyParams(robust_z=1.0, max_alerts_per_day=0)).run(tables)
    assert wide.num_rows > capped.num_rows
