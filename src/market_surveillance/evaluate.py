"""Scorecard of alerts against labelled scenarios (see ``docs/evaluation.md``).

Matching (one policy for every rule):

* **time** — the alert window widened by ``tolerance_s`` on both sides overlaps the label window;
* **entity** — if both the alert and the label name accounts, they share at least one account (and the asset
  when both name one); otherwise (a market-level alert or label) the asset is equal and, when both name a
  venue, the venue too.

An alert matching any label is a true positive for its rule's **precision**, whatever the label's typology
(a manipulator caught by a neighbouring rule is still a manipulator). A label counts as detected for
**recall** only when an alert of a rule that *answers* its typology (the rule's ``typology`` or one of its
``also_answers``) matches it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from market_surveillance.rules.registry import all_rules


def answering_rules() -> dict[str, list[str]]:
    """Typology → names of the rules expected to catch it."""
    out: dict[str, list[str]] = {}
    for cls in all_rules():
        for typ in (cls.typology, *cls.also_answers):
            out.setdefault(str(typ), []).append(cls.name)
    return out


def _as_set(x: Iterable[str] | None) -> set[str]:
    return set(x) if x is not None and len(x) else set()


def _opt(col: pd.Series) -> list[str | None]:
    # pandas 3 reads missing strings as NaN; the matcher wants None
    return [None if (x is None or (isinstance(x, float) and np.isnan(x))) else str(x) for x in col]


def match_pairs(alerts: pd.DataFrame, labels: pd.DataFrame, tolerance_s: float = 300.0) -> pd.DataFrame:
    """All (alert index, label index) pairs that match in time and entity."""
    if alerts.empty or labels.empty:
        return pd.DataFrame({"alert": pd.Series(dtype=int), "label": pd.Series(dtype=int)})
    tol = pd.Timedelta(seconds=tolerance_s)
    a_start = (alerts["window_start"] - tol).to_numpy()
    a_end = (alerts["window_end"] + tol).to_numpy()
    l_start = labels["start_ts"].to_numpy()
    l_end = labels["end_ts"].to_numpy()
    overlap = (a_start[:, None] <= l_end[None, :]) & (a_end[:, None] >= l_start[None, :])
    pairs = []
    a_acc = [_as_set(x) for x in alerts["accounts"]]
    l_acc = [_as_set(x) for x in labels["accounts"]]
    a_asset, l_asset = _opt(alerts["asset"]), _opt(labels["asset"])
    a_venue, l_venue = _opt(alerts["venue"]), _opt(labels["venue"])
    for i, j in zip(*np.nonzero(overlap), strict=True):
        same_asset = a_asset[i] is None or l_asset[j] is None or a_asset[i] == l_asset[j]
        if a_acc[i] and l_acc[j]:
            ok = bool(a_acc[i] & l_acc[j]) and same_asset
        else:
            ok = a_asset[i] is not None and a_asset[i] == l_asset[j]
            if ok and a_venue[i] is not None and l_venue[j] is not None:
                ok = a_venue[i] == l_venue[j]
        if ok:
            pairs.append((int(i), int(j)))
    return pd.DataFrame(pairs, columns=["alert", "label"]).astype(int)


@dataclass
class Scorecard:
    recall: dict[str, dict[str, Any]] = field(default_factory=dict)
    precision: dict[str, dict[str, Any]] = field(default_factory=dict)
    n_alerts: int = 0
    n_labels: int = 0
    unmatched_alerts: list[str] = field(default_factory=list)
    missed_labels: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_alerts": self.n_alerts,
            "n_labels": self.n_labels,
            "recall": self.recall,
            "precision": self.precision,
            "missed_labels": self.missed_labels,
            "unmatched_alerts": self.unmatched_alerts,
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def print(self, console: Console) -> None:
        rec = Table("typology", "labels", "detected", "recall", "answered by", title="recall per typology")
        for typ, r in self.recall.items():
            rec.add_row(typ, str(r["labels"]), str(r["detected"]), _fmt(r["recall"]), ", ".join(r["rules"]))
        console.print(rec)
        prec = Table("rule", "alerts", "true", "false", "precision", title="precision per rule")
        for rule, p in self.precision.items():
            prec.add_row(rule, str(p["alerts"]), str(p["true"]), str(p["false"]), _fmt(p["precision"]))
        console.print(prec)
        for key, value in self.extra.items():
            console.print(f"{key}: {value}")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def score(alerts: pa.Table | pd.DataFrame, labels: pa.Table | pd.DataFrame, tolerance_s: float = 300.0) -> Scorecard:
    """Recall per typology and precision per rule of ``alerts`` against ``labels``."""
    a = alerts.to_pandas() if isinstance(alerts, pa.Table) else alerts.copy()
    lab = labels.to_pandas() if isinstance(labels, pa.Table) else labels.copy()
    a = a.reset_index(drop=True)
    lab = lab.reset_index(drop=True)
    pairs = match_pairs(a, lab, tolerance_s)
    answers = answering_rules()
    card = Scorecard(n_alerts=len(a), n_labels=len(lab))

    matched_alerts = set(pairs["alert"])
    for cls in all_rules():
        mine = a.index[a["rule_name"] == cls.name] if len(a) else []
        n = len(mine)
        tp = sum(1 for i in mine if i in matched_alerts)
        card.precision[cls.name] = {
            "rule_id": cls.rule_id,
            "alerts": n,
            "true": tp,
            "false": n - tp,
            "precision": (tp / n) if n else None,
        }
    card.unmatched_alerts = [a.at[i, "alert_id"] for i in a.index if i not in matched_alerts]

    rule_of_alert = a["rule_name"].to_numpy() if len(a) else np.array([], dtype=object)
    detected_labels: set[int] = set()
    for _, row in pairs.iterrows():
        typ = lab.at[row["label"], "typology"]
        if rule_of_alert[row["alert"]] in answers.get(typ, []):
            detected_labels.add(int(row["label"]))
    for typ in sorted(set(lab["typology"])) if len(lab) else []:
        idx = lab.index[lab["typology"] == typ]
        det = sum(1 for j in idx if j in detected_labels)
        card.recall[typ] = {
            "labels": len(idx),
            "detected": det,
            "recall": det / len(idx) if len(idx) else None,
            "rules": answers.get(typ, []),
        }
    card.missed_labels = [lab.at[j, "scenario_id"] for j in lab.index if j not in detected_labels]
    return card


def score_files(data_dir: str | Path, alerts_path: str | Path, tolerance_s: float = 300.0) -> Scorecard:
    """Scorecard for an alerts file against the labels of a canonical data folder.

    When the folder (or the alerts file's folder) holds ``ml_scores.parquet``, the ROC AUC of the account
    scores against labelled manipulator accounts is added as ``ml_account_auc``.
    """
    from market_surveillance.alerts import read_alerts
    from market_surveillance.schema import InputError, read_table

    data_dir = Path(data_dir)
    # the labels pass the same validation engine as every input (CSV lists are JSON arrays: docs/schema.md)
    labels = read_table(data_dir, "labels")
    if labels is None:
        raise InputError(
            f"{data_dir}: no labels table (labels.parquet or labels.csv); evaluation needs ground truth"
        )
    card = score(read_alerts(alerts_path), labels, tolerance_s)
    for candidate in (data_dir / "ml_scores.parquet", Path(alerts_path).parent / "ml_scores.parquet"):
        if candidate.exists():
            from market_surveillance.ml.evaluate import account_auc

            try:
                card.extra["ml_account_auc"] = account_auc(pd.read_parquet(candidate), labels)
            except ValueError as exc:  # AUC undefined (no labelled account among the scores)
                card.extra["ml_account_auc"] = f"n/a: {exc}"
            break
    return card
