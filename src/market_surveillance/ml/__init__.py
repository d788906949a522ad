"""Behavioural anomaly ranking: per-account features (Ibis), a PyOD-contract detector, explanations, MS014."""

from market_surveillance.ml.detector import AnomalyDetector
from market_surveillance.ml.evaluate import account_auc
from market_surveillance.ml.features import FEATURES, account_features
from market_surveillance.ml.rule import MLAnomaly, score_accounts, write_scores

__all__ = [
    "FEATURES",
    "AnomalyDetector",
    "MLAnomaly",
    "account_auc",
    "account_features",
    "score_accounts",
    "write_scores",
]
