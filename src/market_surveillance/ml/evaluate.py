"""Quality of the account ranking against labelled manipulators (synthetic data only)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa


def manipulator_accounts(labels: pa.Table | pd.DataFrame) -> set[str]:
    """Every account named by any label (market-wide labels name none)."""
    lab = labels.to_pandas() if isinstance(labels, pa.Table) else labels
    return {str(a) for accs in lab["accounts"] if accs is not None for a in accs}


def account_auc(scores: pd.DataFrame, labels: pa.Table | pd.DataFrame) -> float:
    """ROC AUC of ``scores['score']`` (higher = more anomalous) for telling labelled manipulators apart.

    ``scores`` has one row per account (``account_id``, ``score``), as :func:`score_accounts` returns.
    Raises ``ValueError`` when the accounts are all manipulators or none is (AUC undefined).
    """
    from sklearn.metrics import roc_auc_score

    bad = manipulator_accounts(labels)
    y = scores["account_id"].astype(str).isin(bad).to_numpy()
    if y.all() or not y.any():
        raise ValueError("account_auc needs both labelled manipulator and other accounts among the scores")
    return float(roc_auc_score(y, np.asarray(scores["score"], dtype="float64")))
