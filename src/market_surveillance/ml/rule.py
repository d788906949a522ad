"""MS014 ml_anomaly — accounts whose behaviour as a whole is an outlier, with the features that make it so.

Not a pure Ibis expression: features are computed with Ibis on the tables' backend (DuckDB or PySpark), the
detector is fitted in memory on one row per account, and the few flagged accounts go back to the backend
for their evidence ids. :meth:`MLAnomaly.candidates` returns those rows as an in-memory Ibis table with
:data:`CANDIDATE_COLUMNS`, so the base contract holds; :meth:`MLAnomaly.run` finalises them with the
detector's score threshold (the base would write the ``contamination`` param there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

from market_surveillance.alerts import ALERT_SCHEMA, finalize_alerts
from market_surveillance.enums import Typology
from market_surveillance.ml.detector import AnomalyDetector
from market_surveillance.ml.explain import contributions, describe
from market_surveillance.ml.features import (
    FEATURES,
    HEAVY_TAILED,
    account_features,
    group_medians,
    peer_labels,
    peer_normalize,
    trade_legs,
)
from market_surveillance.rules.base import Params, Rule, RuleOutput, param
from market_surveillance.rules.registry import register
from market_surveillance.schema import TS

#: detectors selectable from the rules config (any ``pyod.models`` name works through the Python API)
MODELS = ("iforest", "ecod", "copod", "hbos", "lof", "knn", "pca", "mcd", "ocsvm", "loda", "inne", "cblof")


@dataclass(frozen=True)
class MLAnomalyParams(Params):
    threshold: str = param(
        "robust",
        choices=("robust", "quantile"),
        doc="alert threshold: 'robust' = outside the normal range fitted on the day's scores (median + "
        "robust_z robust sigmas); 'quantile' = the top contamination share, whatever the day",
    )
    robust_z: float = param(
        10.0, low=0.0, closed="neither", doc="width of the normal range, robust standard deviations (MAD)"
    )
    max_alerts_per_day: int = param(
        10, low=0, doc="at most this many alerts per day of data, highest scores first (0: no cap)"
    )
    contamination: float = param(
        0.02, low=0.0, high=0.5, closed="right", doc="share of accounts alerted with threshold='quantile'"
    )
    model: str = param("iforest", choices=MODELS, doc="detector: IsolationForest or a PyOD model name")
    n_estimators: int = param(
        100, low=10, doc="trees of the IsolationForest (iforest only; scikit-learn's default)"
    )
    top_features: int = param(3, low=1, doc="features named in each alert's explanation")
    random_state: int = param(0, low=0, doc="seed of the detector (same seed, same scores)")
    min_accounts: int = param(
        20,
        low=2,
        doc="fewer active accounts than this: no model is fitted (no population to learn norms from)",
    )
    max_evidence: int = param(20, low=1, doc="most recent trade ids and order ids kept per alert")
    peer_groups: bool = param(
        True, doc="score each feature against the account's segment (market makers vs market makers)"
    )
    min_peer_group: int = param(10, low=2, doc="smaller segments are compared with the whole population")
    peer_weighted: bool = param(
        True,
        doc="peer centre = the segment's median weighted by each account's trades + orders (the behaviour "
        "behind its median trade or order), so many new accounts of a few events each cannot set the norm",
    )
    explain_share: float = param(
        0.0,
        low=0.0,
        high=1.0,
        doc="top share of active accounts whose score is explained (always at least the flagged ones)",
    )


def _detector(p: MLAnomalyParams) -> AnomalyDetector:
    # trees are built and scored on every core; the same random_state gives the same forest
    extra = {"n_estimators": p.n_estimators, "n_jobs": -1} if p.model == "iforest" else {}
    return AnomalyDetector(
        model=p.model,
        contamination=p.contamination,
        threshold=p.threshold,
        robust_z=p.robust_z,
        random_state=p.random_state,
        # peer-normalised features are already logged
        log_features=None if p.peer_groups else list(HEAVY_TAILED),
        **extra,
    )


def _score(t: Mapping[str, ir.Table], p: MLAnomalyParams) -> tuple[pd.DataFrame, float]:
    """Features + score, anomaly flag, rank and explanation per account; and the score threshold.

    Only active accounts (at least one trade or order) form the population the model learns from: an idle
    account has no behaviour to judge, and its all-zero row would otherwise be isolated as an outlier. Idle
    accounts get the lowest active score and are never flagged.
    """
    feats = account_features(t, with_activity=True)
    out = feats.copy()
    out["score"] = 0.0
    out["is_anomaly"] = False
    out["top_features"] = ""
    out["explanation"] = ""
    active = ((feats["trade_count"] + feats["order_count"]) > 0).to_numpy()
    threshold = float("inf")
    if active.sum() >= p.min_accounts:
        raw = feats.loc[active, list(FEATURES)]
        if p.peer_groups:
            seg = feats.loc[active, "segment"]
            # the segment's norm is the behaviour behind its median trade or order (activity-weighted)
            w = raw["trade_count"] + raw["order_count"] if p.peer_weighted else None
            X = peer_normalize(raw, seg, list(HEAVY_TAILED), p.min_peer_group, weights=w)
            medians = group_medians(raw, peer_labels(seg, p.min_peer_group), w)
            reference = "peer median"
        else:
            X, medians, reference = raw, raw.median(), "median"
        det = _detector(p).fit(X)
        scores = np.full(len(feats), det.decision_scores_.min())
        scores[active] = det.decision_scores_
        out["score"] = scores
        flagged = det.labels_.astype(bool)
        if p.max_alerts_per_day > 0:
            # the budget: an analyst team reviews a bounded number a day, so keep the highest scores
            span = pd.to_datetime(feats["last_ts"]).max() - pd.to_datetime(feats["first_ts"]).min()
            days = max(1, int(np.ceil(span / pd.Timedelta(days=1)))) if pd.notna(span) else 1
            budget = p.max_alerts_per_day * days
            if flagged.sum() > budget:
                order = np.lexsort((np.arange(len(flagged)), -det.decision_scores_))
                keep = np.zeros(len(flagged), dtype=bool)
                keep[order[:budget]] = True
                flagged &= keep
        out.loc[active, "is_anomaly"] = flagged
        # SHAP is the costly step (most of MS014's time): explain the top of the ranking, where an
        # analyst looks, against the whole population's medians
        n_explain = max(int(np.ceil(p.explain_share * len(X))), int(flagged.sum()))
        top = np.sort(np.argsort(-det.decision_scores_, kind="stable")[:n_explain])
        if len(top):
            # nothing to explain (no account outside the normal range, explain_share 0): no explainer built
            Xs = X.iloc[top]
            sentences, names = describe(
                raw.iloc[top],
                contributions(det, Xs),
                top=p.top_features,
                medians=medians,
                reference=reference,
            )
            out.loc[Xs.index, "top_features"] = [", ".join(n) for n in names]
            out.loc[Xs.index, "explanation"] = sentences
        threshold = det.threshold_
    # ties broken by account id (the index is sorted), so ranks are deterministic
    order = np.lexsort((np.arange(len(out)), -out["score"].to_numpy()))
    rank = np.empty(len(out), dtype=int)
    rank[order] = np.arange(1, len(out) + 1)
    out["rank"] = rank
    return out, threshold


def score_accounts(t: Mapping[str, ir.Table], params: MLAnomalyParams | None = None) -> pd.DataFrame:
    """Every account's anomaly score, sorted by rank (1 = most anomalous).

    Columns: ``account_id``, ``score`` (higher = more anomalous), ``is_anomaly``, ``rank``, ``top_features``,
    ``explanation``, ``first_ts``, ``last_ts`` and the feature values of :data:`FEATURES`.
    """
    scored, _ = _score(t, params or MLAnomalyParams())
    return _score_table(scored)


def _score_table(scored: pd.DataFrame) -> pd.DataFrame:
    cols = ["score", "is_anomaly", "rank", "top_features", "explanation", "first_ts", "last_ts", *FEATURES]
    return scored[cols].reset_index().sort_values("rank", kind="stable").reset_index(drop=True)


def write_scores(scores: pd.DataFrame, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``ml_scores.csv`` and ``ml_scores.parquet`` into ``out_dir``; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, parquet = out / "ml_scores.csv", out / "ml_scores.parquet"
    scores.to_csv(csv, index=False)
    scores.to_parquet(parquet, index=False)
    return csv, parquet


def _evidence(t: Mapping[str, ir.Table], ids: list[str], cap: int) -> tuple[dict[str, list], dict[str, list]]:
    """The ``cap`` most recent trade ids and order ids of each account in ``ids``."""
    legs = trade_legs(t["trades"])
    legs = legs.filter(legs.account_id.isin(ids))
    w = ibis.window(group_by=legs.account_id, order_by=[legs.ts_us.desc(), legs.trade_id.desc()])
    legs = legs.mutate(rn=ibis.row_number().over(w))
    legs = legs.filter(legs.rn < cap)  # row_number is 0-based
    tr = legs.group_by("account_id").aggregate(ids=legs.trade_id.collect()).to_pyarrow().to_pylist()
    o = t["orders"]
    o = o.filter(o.account_id.isin(ids))
    o = o.group_by(["account_id", "order_id"]).aggregate(last_us=o.ts_us.max())
    wo = ibis.window(group_by=o.account_id, order_by=[o.last_us.desc(), o.order_id.desc()])
    o = o.mutate(rn=ibis.row_number().over(wo))
    o = o.filter(o.rn < cap)
    od = o.group_by("account_id").aggregate(ids=o.order_id.collect()).to_pyarrow().to_pylist()
    return {r["account_id"]: r["ids"] for r in tr}, {r["account_id"]: r["ids"] for r in od}


@register
class MLAnomaly(Rule):
    """Behavioural anomaly (unsupervised ML over per-account features).

    What it detects
        Accounts whose combination of behaviours — message rate, cancel ratio and latency, counterparty
        concentration, self-trading, timing, size versus the market, deviation from the stored baseline,
        position share, shared devices — is an outlier in the day's population (IsolationForest by default).
        Each alert names the features that isolate the account, with its value against the population median.
    Why it is abusive
        Manipulators who keep every single metric under its rule threshold still look unlike honest
        participants on several at once; ranking them lets analysts find schemes no rule was written for
        (EU MAR Art. 16 requires "effective arrangements" to detect suspicious orders and transactions).
    Known false positives
        Legitimately unusual participants: a new market maker, a fund rebalancing once, an account trading
        a single illiquid asset. The score is relative to the day's population, so a quiet day makes
        ordinary accounts stand out more; review the explanation before escalating.
    """

    rule_id = "MS014"
    name = "ml_anomaly"
    typology = Typology.BEHAVIOURAL_ANOMALY
    regulatory_name = "EU MAR Art. 16(2): detection of suspicious orders and transactions"
    metric = "anomaly_score"
    threshold_param = "robust_z"
    Params = MLAnomalyParams
    requires = ("trades", "orders", "accounts")
    needs_trade_accounts = True
    # a cross-section of the accounts active over the data in view (a day): see docs/online.md
    lookback = (86_400,)
    online_every_s = 3_600  # a model fit per micro-batch would be wasted: the population changes slowly

    def __init__(self, params: Params | None = None, asset_params: Mapping[str, Params] | None = None):
        if asset_params:
            # the population is accounts, not assets: a per-asset threshold has no meaning here
            raise ValueError(
                "ml_anomaly scores accounts across all assets; per-asset params are not supported"
            )
        super().__init__(params, asset_params)

    def _raw(self, t: Mapping[str, ir.Table], p: MLAnomalyParams) -> tuple[pa.Table, pa.Table]:
        """The flagged accounts' candidate rows and every account's score table."""
        scored, threshold = _score(t, p)
        scores = _score_table(scored)
        flagged = scored[scored["is_anomaly"]].sort_values("rank", kind="stable")
        if flagged.empty:
            empty = pa.table(
                {
                    "asset": pa.array([], pa.string()),
                    "venue": pa.array([], pa.string()),
                    "accounts": pa.array([], pa.list_(pa.string())),
                    "window_start": pa.array([], TS),
                    "window_end": pa.array([], TS),
                    "value": pa.array([], pa.float64()),
                    "score": pa.array([], pa.float64()),
                    "evidence_trade_ids": pa.array([], pa.list_(pa.string())),
                    "evidence_order_ids": pa.array([], pa.list_(pa.string())),
                    "explanation": pa.array([], pa.string()),
                    "threshold": pa.array([], pa.float64()),
                }
            )
            return empty, scores
        ids = [str(a) for a in flagged.index]
        ev_t, ev_o = _evidence(t, ids, p.max_evidence)
        # an account with no trade or order (flagged on its position or network alone) gets the data's span
        start = flagged["first_ts"].fillna(scored["first_ts"].min())
        end = flagged["last_ts"].fillna(scored["last_ts"].max())
        n = len(ids)
        # the population is judged as a whole: the decision is taken on all the data seen
        decided = pd.to_datetime(pd.Series([scored["last_ts"].max()] * n), utc=True)
        raw = pa.table(
            {
                "asset": pa.nulls(n, pa.string()),
                "venue": pa.nulls(n, pa.string()),
                "accounts": pa.array([[a] for a in ids], pa.list_(pa.string())),
                "window_start": pa.array(pd.to_datetime(start, utc=True), TS),
                "window_end": pa.array(pd.to_datetime(end, utc=True), TS),
                "detected_at": pa.array(decided, TS),
                "value": pa.array(flagged["score"].to_numpy(), pa.float64()),
                "score": pa.array(flagged["score"].to_numpy(), pa.float64()),
                "evidence_trade_ids": pa.array([ev_t.get(a, []) for a in ids], pa.list_(pa.string())),
                "evidence_order_ids": pa.array([ev_o.get(a, []) for a in ids], pa.list_(pa.string())),
                "explanation": pa.array(
                    [
                        f"rank {r} of {len(scored)}: {e}"
                        for r, e in zip(flagged["rank"], flagged["explanation"], strict=True)
                    ],
                    pa.string(),
                ),
                "threshold": pa.array([threshold] * n, pa.float64()),
            }
        )
        return raw, scores

    def candidates(self, t: Mapping[str, ir.Table], p: MLAnomalyParams) -> ir.Table:
        """The flagged accounts as an in-memory table with :data:`CANDIDATE_COLUMNS` (+ explanation)."""
        raw = self._raw(t, p)[0]
        return ibis.memtable(
            raw.drop_columns([c for c in ("threshold", "detected_at") if c in raw.column_names])
        )

    def run(self, t: Mapping[str, ir.Table]) -> pa.Table:
        return self.execute(t).alerts

    def execute(self, t: Mapping[str, ir.Table]) -> RuleOutput:
        """Alerts plus ``side["ml_scores"]``: every account's score, so callers need not score twice."""
        raw, scores = self._raw(t, self.params)
        alerts = finalize_alerts(self, raw) if raw.num_rows else ALERT_SCHEMA.empty_table()
        return RuleOutput(alerts, {"ml_scores": scores})
