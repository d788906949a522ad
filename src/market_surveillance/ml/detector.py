"""Anomaly detector with the scikit-learn / PyOD contract.

``AnomalyDetector`` wraps IsolationForest (PyOD's ``IForest``, itself scikit-learn's) or any PyOD detector
chosen by module name, behind one preprocessing step (log1p of heavy-tailed columns, robust scaling) so
every model sees the same inputs. Parameters are stored untouched in ``__init__`` and validated in
:meth:`AnomalyDetector.fit`, with scikit-learn's error format.
"""

from __future__ import annotations

import importlib
import inspect
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

#: the default model; any other name is looked up as ``pyod.models.<name>``
DEFAULT_MODEL = "iforest"


class _IForest:
    """PyOD's ``IForest`` without importing PyOD: scikit-learn's IsolationForest behind PyOD's interface.

    The default model needs nothing else from PyOD, whose import pulls in its plotting and data helpers
    (scipy.stats and more) on every run: ``bench/detect.py``'s fixed cost. Scores are PyOD's exactly: ``decision_scores_``
    is minus scikit-learn's ``decision_function`` of the training data, ``detector_`` is the fitted forest.
    """

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: str | int | float = "auto",
        contamination: float = 0.1,
        max_features: float = 1.0,
        bootstrap: bool = False,
        n_jobs: int = 1,
        random_state: int | None = None,
        verbose: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.contamination = contamination
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X: np.ndarray, y: Any = None) -> _IForest:
        from sklearn.ensemble import IsolationForest

        self.detector_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            contamination=self.contamination,
            max_features=self.max_features,
            bootstrap=self.bootstrap,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            verbose=self.verbose,
        ).fit(X)
        self.decision_scores_ = self.decision_function(X)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return -np.asarray(self.detector_.decision_function(X), dtype="float64").ravel()


def _pyod_class(name: str) -> type:
    """The detector class of ``pyod.models.<name>`` (e.g. ``iforest`` → ``IForest``, ``lof`` → ``LOF``)."""
    if name == DEFAULT_MODEL:
        return _IForest
    from pyod.models.base import BaseDetector

    module = importlib.import_module(f"pyod.models.{name}")
    classes = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, BaseDetector)
        and obj is not BaseDetector
        and obj.__module__ == module.__name__
    ]
    if not classes:
        raise ImportError(f"pyod.models.{name} defines no detector")
    wanted = name.replace("_", "").lower()
    for cls in classes:
        if cls.__name__.lower() == wanted:
            return cls
    return classes[0]


def _known_model(name: Any) -> bool:
    if not isinstance(name, str) or not name.isidentifier():
        return False
    try:
        _pyod_class(name)
    except ImportError:
        return False
    return True


class AnomalyDetector:
    """Unsupervised outlier detector over a feature table (rows = entities, e.g. accounts).

    Parameters
    ----------
    model : str, default "iforest"
        ``"iforest"`` (IsolationForest) or the name of any PyOD detector module (``"lof"``, ``"ecod"``,
        ``"copod"``, ``"knn"``, ``"hbos"``, ...).
    contamination : float, default 0.02
        Expected share of anomalies, in (0, 0.5]: sets ``threshold_`` and ``labels_`` when
        ``threshold="quantile"``.
    threshold : {"quantile", "robust"}, default "quantile"
        How ``threshold_`` is fitted on the training scores. ``"quantile"``: their ``1 - contamination``
        quantile (a fixed share is always flagged). ``"robust"``: the edge of the fitted normal range,
        ``median + robust_z × 1.4826 × MAD`` of the scores, so a population without outliers yields none.
    robust_z : float, default 3.5
        Width of the normal range in robust standard deviations (``threshold="robust"``).
    random_state : int or None, default 0
        Seed handed to the model when it takes one; fixed seed → identical scores.
    log_features : "auto", sequence of column names or None, default "auto"
        Columns transformed with ``log1p`` before scaling (heavy tails would otherwise dominate distance-based
        models). ``"auto"``: non-negative columns whose 99th percentile exceeds 10 × their median + 1.
    scale : bool, default True
        Robust scaling (median / inter-quartile range) after the log transform.
    **model_params
        Passed to the model's constructor (e.g. ``n_estimators=200``).

    Attributes
    ----------
    decision_scores_ : ndarray of shape (n_samples,)
        Outlier scores of the training data; higher = more anomalous.
    threshold_ : float
        Score above which a sample is labelled an outlier (see ``threshold``).
    labels_ : ndarray of shape (n_samples,)
        1 for outliers, 0 for inliers.
    feature_names_in_ : ndarray of str
        Column names seen in :meth:`fit` (``x0``, ``x1``, ... for arrays).
    model_ : object
        The fitted PyOD detector.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        contamination: float = 0.02,
        random_state: int | None = 0,
        threshold: str = "quantile",
        robust_z: float = 3.5,
        log_features: str | Sequence[str] | None = "auto",
        scale: bool = True,
        **model_params: Any,
    ) -> None:
        self.model = model
        self.contamination = contamination
        self.random_state = random_state
        self.threshold = threshold
        self.robust_z = robust_z
        self.log_features = log_features
        self.scale = scale
        self.model_params = model_params

    # -- scikit-learn plumbing -----------------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {
            "model": self.model,
            "contamination": self.contamination,
            "random_state": self.random_state,
            "threshold": self.threshold,
            "robust_z": self.robust_z,
            "log_features": self.log_features,
            "scale": self.scale,
            **self.model_params,
        }

    def set_params(self, **params: Any) -> AnomalyDetector:
        own = {"model", "contamination", "random_state", "threshold", "robust_z", "log_features", "scale"}
        for key, value in params.items():
            if key in own:
                setattr(self, key, value)
            else:
                self.model_params[key] = value
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"AnomalyDetector({args})"

    # -- validation ---------------------------------------------------------------------------------
    def _validate_params(self) -> None:
        def fail(name: str, must: str, value: Any) -> None:
            raise ValueError(
                f"The {name!r} parameter of AnomalyDetector must be {must}. Got {value!r} instead."
            )

        if not _known_model(self.model):
            fail("model", "'iforest' or the name of a pyod.models module (e.g. 'lof', 'ecod')", self.model)
        c = self.contamination
        if isinstance(c, bool) or not isinstance(c, numbers.Real) or not (0.0 < float(c) <= 0.5):
            fail("contamination", "a float in the range (0, 0.5]", c)
        if self.threshold not in ("quantile", "robust"):
            fail("threshold", "one of 'quantile', 'robust'", self.threshold)
        z = self.robust_z
        if isinstance(z, bool) or not isinstance(z, numbers.Real) or not float(z) > 0:
            fail("robust_z", "a float in the range (0, inf)", z)
        rs = self.random_state
        if rs is not None and (isinstance(rs, bool) or not isinstance(rs, numbers.Integral) or rs < 0):
            fail("random_state", "None or a non-negative int", rs)
        lf = self.log_features
        if not (lf is None or lf == "auto" or (isinstance(lf, Sequence) and not isinstance(lf, str))):
            fail("log_features", "'auto', None or a sequence of column names", lf)
        if not isinstance(self.scale, bool):
            fail("scale", "a bool", self.scale)

    # -- preprocessing ------------------------------------------------------------------------------
    def _frame(self, X: Any) -> pd.DataFrame:
        if isinstance(X, pd.DataFrame):
            df = X.astype("float64")
        else:
            arr = np.asarray(X, dtype="float64")
            if arr.ndim != 2:
                raise ValueError(f"X must be 2-dimensional; got an array of shape {arr.shape}")
            names = getattr(self, "feature_names_in_", None)
            if names is None or len(names) != arr.shape[1]:
                names = [f"x{i}" for i in range(arr.shape[1])]
            df = pd.DataFrame(arr, columns=list(names))
        if not np.isfinite(df.to_numpy()).all():
            raise ValueError("X contains NaN or infinite values")
        return df

    def _log_columns(self, df: pd.DataFrame) -> list[str]:
        if self.log_features is None:
            return []
        if self.log_features == "auto":
            out = []
            for c in df.columns:
                col = df[c].to_numpy()
                if (col >= 0).all() and np.quantile(col, 0.99) > 10 * np.median(col) + 1:
                    out.append(c)
            return out
        missing = [c for c in self.log_features if c not in df.columns]
        if missing:
            raise ValueError(f"log_features names columns absent from X: {missing}")
        return list(self.log_features)

    def _transform(self, df: pd.DataFrame) -> np.ndarray:
        if list(df.columns) != list(self.feature_names_in_):
            raise ValueError(
                f"X has columns {list(df.columns)}; the detector was fitted on {list(self.feature_names_in_)}"
            )
        out = df.copy()
        for c in self.log_columns_:
            # negative values (unexpected in a column chosen for log) are clipped rather than NaN
            out[c] = np.log1p(out[c].clip(lower=0.0))
        arr = out.to_numpy(dtype="float64")
        if self.scale:
            arr = (arr - self.center_) / self.scale_
        return arr

    # -- fitting and scoring ------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> AnomalyDetector:
        """Fit on ``X`` (DataFrame or 2-D array); ``y`` is ignored (unsupervised). Returns self."""
        self._validate_params()
        df = self._frame(X)
        if len(df) < 2:
            raise ValueError(f"AnomalyDetector needs at least 2 samples; got {len(df)}")
        self.feature_names_in_ = np.asarray(df.columns, dtype=object)
        self.log_columns_ = self._log_columns(df)
        logged = df.copy()
        for c in self.log_columns_:
            logged[c] = np.log1p(logged[c].clip(lower=0.0))
        arr = logged.to_numpy(dtype="float64")
        self.center_ = np.median(arr, axis=0)
        q75, q25 = np.percentile(arr, [75, 25], axis=0)
        iqr = q75 - q25
        # a constant-ish column (IQR 0) falls back to its std, then to 1, so it cannot blow up
        std = arr.std(axis=0)
        self.scale_ = np.where(iqr > 0, iqr, np.where(std > 0, std, 1.0))
        Z = self._transform(df)
        cls = _pyod_class(self.model)
        kwargs = dict(self.model_params)
        accepted = inspect.signature(cls.__init__).parameters
        if "contamination" in accepted:
            kwargs.setdefault("contamination", float(self.contamination))
        if "random_state" in accepted:
            kwargs.setdefault("random_state", self.random_state)
        self.model_ = cls(**kwargs)
        self.model_.fit(Z)
        self.decision_scores_ = np.asarray(self.model_.decision_scores_, dtype="float64")
        self.threshold_ = self._fit_threshold(self.decision_scores_)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    def _fit_threshold(self, scores: np.ndarray) -> float:
        if self.threshold == "quantile":
            return float(np.percentile(scores, 100 * (1 - float(self.contamination))))
        med = float(np.median(scores))
        mad = 1.4826 * float(np.median(np.abs(scores - med)))
        if mad <= 0:
            # more than half the scores tie: spread from the upper half instead of flagging every deviation
            mad = float(np.percentile(scores, 75) - med) or float(scores.std()) or 1.0
        return med + float(self.robust_z) * mad

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("AnomalyDetector is not fitted yet: call fit(X) first")

    def transform(self, X: Any) -> np.ndarray:
        """``X`` as the model sees it (log1p of the chosen columns, robust-scaled)."""
        self._check_fitted()
        return self._transform(self._frame(X))

    def decision_function(self, X: Any) -> np.ndarray:
        """Outlier scores of new samples (higher = more anomalous), on the scale of ``decision_scores_``."""
        Z = self.transform(X)
        return np.asarray(self.model_.decision_function(Z), dtype="float64")

    def predict(self, X: Any) -> np.ndarray:
        """1 for samples scoring above ``threshold_``, else 0."""
        return (self.decision_function(X) > self.threshold_).astype(int)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        return self.fit(X).labels_
