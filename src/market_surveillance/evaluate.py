"""Scorecard of alerts against labelled scenarios (see ``docs/evaluation.md``).

Matching (one policy for every rule):

* **time** — the alert window widened by ``tolerance_s`` on both sides overlaps the label window;
* **entity** — if both the alert and the label name accounts, they share at least one account (and the asset
  when both name one); otherwise (a market-level alert or label) the asset is equal and, when both name a
  venue, the venue too, and the label's typology is one that moves the market (:data:`MARKET_MOVING`) or one
  the alert's rule answers: a price alert is not explained by a spoofer who happened to be on the asset.

An alert matching any label is a true positive for its rule's **precision**, whatever the label's typology
(a manipulator caught by a neighbouring rule is still a manipulator). A label counts as detected for
**recall** only when an alert of a rule that *answers* its typology (the rule's ``typology`` or one of its
``also_answers``) matches it. Recall is also broken down by the label's ``variant`` and liquidity ``tier``
(``recall_by_variant``) when the labels carry them, and the alert rate per 100,000 trades is reported when
the number of trades is known (the false-alert rate of a world without scenarios).
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


#: typologies whose scenarios move the asset's price or volume for everyone (any market-level alert may see them)
MARKET_MOVING = frozenset(
    {"pump_and_dump", "cross_venue_dislocation", "front_running", "marking_the_close", "volume_spike"}
)


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
    a_rule = _opt(alerts["rule_name"]) if "rule_name" in alerts else [None] * len(alerts)
    l_typ = _opt(labels["typology"])
    answers = answering_rules()
    for i, j in zip(*np.nonzero(overlap), strict=True):
        same_asset = a_asset[i] is None or l_asset[j] is None or a_asset[i] == l_asset[j]
        if a_acc[i] and l_acc[j]:
            ok = bool(a_acc[i] & l_acc[j]) and same_asset
        else:
            ok = a_asset[i] is not None and a_asset[i] == l_asset[j]
            if ok and a_venue[i] is not None and l_venue[j] is not None:
                ok = a_venue[i] == l_venue[j]
            if ok and a_rule[i] is not None:
                ok = l_typ[j] in MARKET_MOVING or a_rule[i] in answers.get(str(l_typ[j]), [])
        if ok:
            pairs.append((int(i), int(j)))
    return pd.DataFrame(pairs, columns=["alert", "label"]).astype(int)


@dataclass
class Scorecard:
    recall: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "typology/variant/tier" -> labels, detected, recall
    recall_by_variant: dict[str, dict[str, Any]] = field(default_factory=dict)
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
            "recall_by_variant": self.recall_by_variant,
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
        if self.recall_by_variant:
            var = Table(
                "typology / variant / tier",
                "labels",
                "detected",
                "recall",
                title="recall per variant and tier",
            )
            for key, r in self.recall_by_variant.items():
                var.add_row(key, str(r["labels"]), str(r["detected"]), _fmt(r["recall"]))
            console.print(var)
        prec = Table("rule", "alerts", "true", "false", "precision", title="precision per rule")
        for rule, p in self.precision.items():
            prec.add_row(rule, str(p["alerts"]), str(p["true"]), str(p["false"]), _fmt(p["precision"]))
        console.print(prec)
        for key, value in self.extra.items():
            console.print(f"{key}: {value}")


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def score(
    alerts: pa.Table | pd.DataFrame,
    labels: pa.Table | pd.DataFrame,
    tolerance_s: float = 300.0,
    n_trades: int | None = None,
) -> Scorecard:
    """Recall per typology (and per variant × tier), precision per rule of ``alerts`` against ``labels``;
    with ``n_trades``, also ``alerts_per_100k_trades``."""
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
    card.recall_by_variant = recall_by_variant(lab, detected_labels)
    if n_trades is not None:
        card.extra["n_trades"] = int(n_trades)
        card.extra["alerts_per_100k_trades"] = round(len(a) * 100_000 / n_trades, 3) if n_trades else None
    return card


def variant_key(typology: str, variant: object, tier: object) -> str:
    """``typology/variant/tier`` (``-`` for a label without variant or tier, e.g. data from an older generator)."""
    parts = [typology] + [
        str(x) if x is not None and not (isinstance(x, float) and np.isnan(x)) else "-"
        for x in (variant, tier)
    ]
    return "/".join(parts)


def recall_by_variant(labels: pd.DataFrame, detected: set[int]) -> dict[str, dict[str, Any]]:
    """Labels, detected labels and recall per ``typology/variant/tier`` (index positions in ``detected``)."""
    if labels.empty:
        return {}
    variant = (
        labels["variant"] if "variant" in labels else pd.Series([None] * len(labels), index=labels.index)
    )
    tier = labels["tier"] if "tier" in labels else pd.Series([None] * len(labels), index=labels.index)
    keys = [variant_key(t, v, r) for t, v, r in zip(labels["typology"], variant, tier, strict=True)]
    out: dict[str, dict[str, Any]] = {}
    for j, key in zip(labels.index, keys, strict=True):
        r = out.setdefault(key, {"labels": 0, "detected": 0})
        r["labels"] += 1
        r["detected"] += int(j in detected)
    for r in out.values():
        r["recall"] = r["detected"] / r["labels"]
    return dict(sorted(out.items()))


def score_files(data_dir: str | Path, alerts_path: str | Path, tolerance_s: float = 300.0) -> Scorecard:
    """Scorecard for an alerts file against the labels of a canonical data folder.

    When the folder (or the alerts file's folder) holds ``ml_scores.parquet``, the ROC AUC of the account
    scores against labelled manipulator accounts is added as ``ml_account_auc``.
    """
    import pyarrow.parquet as pq

    from market_surveillance.alerts import read_alerts
    from market_surveillance.schema import InputError, find_table_file, read_table

    data_dir = Path(data_dir)
    # the labels pass the same validation engine as every input (CSV lists are JSON arrays: docs/schema.md)
    labels = read_table(data_dir, "labels")
    if labels is None:
        raise InputError(
            f"{data_dir}: no labels table (labels.parquet or labels.csv); evaluation needs ground truth"
        )
    trades_path = find_table_file(data_dir, "trades")
    n_trades = None
    if trades_path is not None and trades_path.suffix == ".parquet":
        n_trades = pq.ParquetFile(trades_path).metadata.num_rows
    card = score(read_alerts(alerts_path), labels, tolerance_s, n_trades=n_trades)
    for candidate in (data_dir / "ml_scores.parquet", Path(alerts_path).parent / "ml_scores.parquet"):
        if candidate.exists():
            from market_surveillance.ml.evaluate import account_auc

            try:
                card.extra["ml_account_auc"] = account_auc(pd.read_parquet(candidate), labels)
            except ValueError as exc:  # AUC undefined (no labelled account among the scores)
                card.extra["ml_account_auc"] = f"n/a: {exc}"
            break
    return card


#: acceptance of the robustness scorecard (issue 12): same defaults for every seed, nothing tuned per seed
RECALL_FLOOR = 0.95
PRECISION_FLOOR = 0.90
CLEAN_ALERTS_PER_100K = 5.0


def world_scorecard(
    seed: int,
    scale: str = "small",
    *,
    inject: bool = True,
    world: str = "random",
    internal_transfers: int = 0,
) -> Scorecard:
    """Simulate one world, run every registered rule (ML included) with its defaults and score the alerts."""
    from market_surveillance.io.canonical import from_arrow
    from market_surveillance.pipeline import run_rules
    from market_surveillance.rules.config import build_rules
    from market_surveillance.simulate import simulate

    data = simulate(seed, scale=scale, inject=inject, world=world, internal_transfers=internal_transfers)
    _, tables, profile = from_arrow(data)
    alerts = run_rules(tables, profile, build_rules()).alerts
    return score(alerts, data["labels"], n_trades=data["trades"].num_rows)


@dataclass
class Robustness:
    """Robustness scorecard pooled over randomised worlds (``worlds``) and worlds without scenarios (``clean``)."""

    worlds: dict[int, Scorecard]
    clean: dict[int, Scorecard]
    # (seed, transfers, scorecard): a clean world with that many innocent internal transfers added
    transfers: tuple[int, int, Scorecard] | None = None

    def transfer_alerts(self) -> dict[str, int]:
        """Alerts per rule that the internal transfers add to their clean world (the known false positive of
        owner-linked wash-trade detection); empty when not measured."""
        if self.transfers is None or self.transfers[0] not in self.clean:
            return {}
        seed, _, card = self.transfers
        base = self.clean[seed].precision
        return {
            r: p["alerts"] - base.get(r, {"alerts": 0})["alerts"]
            for r, p in card.precision.items()
            if p["alerts"] != base.get(r, {"alerts": 0})["alerts"]
        }

    def recall(self) -> dict[str, dict[str, Any]]:
        """Pooled labels / detected / recall per ``typology/variant/tier``, and the lowest seed's recall."""
        out: dict[str, dict[str, Any]] = {}
        for card in self.worlds.values():
            for key, r in card.recall_by_variant.items():
                p = out.setdefault(key, {"labels": 0, "detected": 0, "min_seed_recall": 1.0})
                p["labels"] += r["labels"]
                p["detected"] += r["detected"]
                p["min_seed_recall"] = min(p["min_seed_recall"], r["recall"])
        for p in out.values():
            p["recall"] = p["detected"] / p["labels"]
        return dict(sorted(out.items()))

    def precision(self) -> dict[str, dict[str, Any]]:
        """Pooled alerts / true / precision per rule over the randomised worlds."""
        out: dict[str, dict[str, Any]] = {}
        for card in self.worlds.values():
            for rule, r in card.precision.items():
                p = out.setdefault(rule, {"rule_id": r["rule_id"], "alerts": 0, "true": 0})
                p["alerts"] += r["alerts"]
                p["true"] += r["true"]
        for p in out.values():
            p["precision"] = p["true"] / p["alerts"] if p["alerts"] else None
        return out

    def clean_rate(self) -> dict[str, Any]:
        """Alerts per 100k trades on the clean worlds, overall and per rule (every alert there is false)."""
        trades = sum(int(c.extra.get("n_trades", 0)) for c in self.clean.values())
        per_rule: dict[str, int] = {}
        for card in self.clean.values():
            for rule, r in card.precision.items():
                per_rule[rule] = per_rule.get(rule, 0) + r["alerts"]
        total = sum(per_rule.values())
        scale = 100_000 / trades if trades else float("nan")
        return {
            "trades": trades,
            "alerts": total,
            "alerts_per_100k_trades": total * scale,
            "per_rule": {k: v * scale for k, v in sorted(per_rule.items()) if v},
        }

    def shortfalls(self) -> list[str]:
        """Every acceptance criterion not met, one line each (empty when the scorecard holds)."""
        out = [
            f"recall {k}: {r['detected']}/{r['labels']} = {r['recall']:.2f} < {RECALL_FLOOR}"
            for k, r in self.recall().items()
            if r["recall"] < RECALL_FLOOR
        ]
        out += [
            f"precision {rule}: {p['true']}/{p['alerts']} = {p['precision']:.2f} < {PRECISION_FLOOR}"
            for rule, p in self.precision().items()
            if p["precision"] is not None and p["precision"] < PRECISION_FLOOR
        ]
        clean = self.clean_rate()
        if self.clean and clean["alerts_per_100k_trades"] > CLEAN_ALERTS_PER_100K:
            out.append(
                f"clean worlds: {clean['alerts']} alerts in {clean['trades']:,} trades = "
                f"{clean['alerts_per_100k_trades']:.2f} per 100k > {CLEAN_ALERTS_PER_100K}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeds": sorted(self.worlds),
            "clean_seeds": sorted(self.clean),
            "recall": self.recall(),
            "precision": self.precision(),
            "clean": self.clean_rate(),
            "shortfalls": self.shortfalls(),
            "internal_transfers": None
            if self.transfers is None
            else {
                "seed": self.transfers[0],
                "transfers": self.transfers[1],
                "added_alerts": self.transfer_alerts(),
            },
        }


def robustness(
    seeds: Iterable[int],
    clean_seeds: Iterable[int] = (),
    scale: str = "small",
    on_world: Any = None,
    internal_transfers: int = 0,
) -> Robustness:
    """Score randomised worlds (one per seed) and clean worlds (no scenarios) with every rule's defaults; with
    ``internal_transfers``, also the first clean world again with that many innocent internal transfers."""
    worlds, clean = {}, {}
    for s in seeds:
        worlds[s] = world_scorecard(s, scale)
        if on_world is not None:
            on_world("world", s, worlds[s])
    for s in clean_seeds:
        clean[s] = world_scorecard(s, scale, inject=False)
        if on_world is not None:
            on_world("clean", s, clean[s])
    rob = Robustness(worlds, clean)
    if internal_transfers and clean:
        s = next(iter(clean))
        rob.transfers = (
            s,
            internal_transfers,
            world_scorecard(s, scale, inject=False, internal_transfers=internal_transfers),
        )
    return rob
