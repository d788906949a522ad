"""Why an account scored high: per-feature contributions and an analyst-readable sentence.

For IsolationForest the contributions are SHAP values of the expected path length (TreeExplainer, exact
for tree ensembles): a feature that isolates the account quickly shortens its path, so its contribution to
the anomaly is ``-shap``. Other PyOD models have no tree structure; for them the contribution is the
account's robust z-score on the feature (distance from the population median in IQR units), which is what
distance- and density-based detectors react to.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from market_surveillance.ml.detector import AnomalyDetector

#: unit suffix printed after a feature's value
UNITS = {
    "msg_rate_peak": "/min",
    "cancel_latency_median_s": "s",
    "price_deviation_bps": "bps",
    "notional": " USD",
    "baseline_deviation": "x",
    "order_size_rel": "x",
    "order_size_rel_max": "x",
}


def contributions(detector: AnomalyDetector, X: pd.DataFrame) -> pd.DataFrame:
    """Per-feature contribution to each row's anomaly (higher = pushes towards anomalous), same shape as X."""
    Z = detector.transform(X)
    inner = getattr(detector.model_, "detector_", None)
    if detector.model == "iforest" and inner is not None:
        import shap  # imported lazily: a few seconds, and only explanations need it

        values = np.asarray(shap.TreeExplainer(inner).shap_values(Z), dtype="float64")
        contrib = -values
    else:
        contrib = np.abs(Z)
    return pd.DataFrame(contrib, index=X.index, columns=X.columns)


def _fmt(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.0f}"
    return f"{x:.2g}" if abs(x) < 0.1 else f"{x:.2f}"


def describe(
    X: pd.DataFrame,
    contrib: pd.DataFrame,
    top: int = 3,
    medians: pd.Series | pd.DataFrame | None = None,
    reference: str = "median",
) -> tuple[list[str], list[list[str]]]:
    """For each row: a sentence naming its ``top`` features with value vs a median, and their names.

    ``medians`` is one reference per column (default: X's medians) or a frame aligned with X giving each row
    its own (e.g. its peer group's); ``reference`` names it in the sentence. Only features that push towards
    anomalous (contribution > 0) are named.
    """
    med = X.median() if medians is None else medians
    if isinstance(med, pd.DataFrame):
        mvals = med.loc[X.index, list(X.columns)].to_numpy(dtype="float64")
    else:
        mvals = np.broadcast_to(med.loc[list(X.columns)].to_numpy(dtype="float64"), X.shape)
    values = X.to_numpy()
    c = contrib.to_numpy()
    cols = list(X.columns)
    order = np.argsort(-c, axis=1, kind="stable")[:, :top]
    sentences: list[str] = []
    names: list[list[str]] = []
    for i in range(len(X)):
        picked = [j for j in order[i] if c[i, j] > 0]
        parts = []
        for j in picked:
            unit = UNITS.get(cols[j], "")
            parts.append(f"{cols[j]}={_fmt(values[i, j])}{unit} ({reference} {_fmt(float(mvals[i, j]))}{unit})")
        sentences.append("; ".join(parts))
        names.append([cols[j] for j in picked])
    return sentences, names
