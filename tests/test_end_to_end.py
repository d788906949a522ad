"""End to end on the synthetic exchange: every typology is caught and every rule is precise (issue 3).

Seeds 1..5 at `--scale small`, default thresholds; the floors are the acceptance criteria, measured the
same way as `market-surveillance evaluate --json`.
"""

from __future__ import annotations

import pytest

from market_surveillance.evaluate import score
from market_surveillance.io.canonical import from_arrow
from market_surveillance.pipeline import run_rules
from market_surveillance.rules.config import build_rules
from market_surveillance.simulate import simulate

RECALL_FLOOR = 0.95
PRECISION_FLOOR = 0.90
SEEDS = [1, 2, 3, 4, 5]

#: What the rules do not reach yet on the reference world (issue 12 is open for them), each with its reason.
#: The tests fail on any other shortfall and on a listed one that has been fixed, so the list stays true.
KNOWN_SHORTFALLS: dict[str, str] = {
    # per seed (bench/scorecard.py --seeds 1 2 3 4 5, branch recall-12); every five-seed pool holds. Below the
    # floor on one seed only: the stricter matching of market-level alerts to labels (issue 12) no longer
    # credits them with all-day position-concentration labels. (MS018's weakest ramp on seed 5 and MS003 on
    # seed 4 left this list with the participation path and the half-hour move floor.)
    "precision cross_market_divergence": "MS012 on one seed: 0.89",
    "precision volume_spike": "MS004 on seed 5: 5/6, a lumpy institutional account at 5.0x its own norm",
}


def _check_shortfalls(found: set[str]) -> None:
    assert found <= set(KNOWN_SHORTFALLS), f"new shortfall(s): {sorted(found - set(KNOWN_SHORTFALLS))}"


@pytest.fixture(scope="module")
def cards():
    out = {}
    # ML is scored by its own AUC (issue 5); its alerts are a ranking, not a thresholded rule
    rules = [r for r in build_rules() if r.name != "ml_anomaly"]
    for seed in SEEDS:
        data = simulate(seed, scale="small")
        _, tables, profile = from_arrow(data)
        out[seed] = score(run_rules(tables, profile, rules).alerts, data["labels"])
    return out


def test_end_to_end_every_typology_recall_at_least_floor(cards):
    labels, detected = {}, {}
    for card in cards.values():
        for typ, r in card.recall.items():
            labels[typ] = labels.get(typ, 0) + r["labels"]
            detected[typ] = detected.get(typ, 0) + r["detected"]
    assert len(labels) >= 13
    low = {t: detected[t] / labels[t] for t in labels if detected[t] / labels[t] < RECALL_FLOOR}
    _check_shortfalls({f"recall {t}" for t in low})


def test_end_to_end_every_rule_precision_at_least_floor(cards):
    alerts, true = {}, {}
    for card in cards.values():
        for rule, p in card.precision.items():
            alerts[rule] = alerts.get(rule, 0) + p["alerts"]
            true[rule] = true.get(rule, 0) + p["true"]
    low = {r: true[r] / alerts[r] for r in alerts if alerts[r] and true[r] / alerts[r] < PRECISION_FLOOR}
    _check_shortfalls({f"precision {r}" for r in low})


def test_end_to_end_each_seed_recall_and_precision_floor(cards):
    short: set[str] = set()
    for card in cards.values():
        short |= {f"recall {t}" for t, r in card.recall.items() if r["recall"] < RECALL_FLOOR and r["labels"]}
        short |= {f"precision {r}" for r, p in card.precision.items() if p["alerts"] and p["precision"] < 0.9}
    _check_shortfalls(short)
    fixed = set(KNOWN_SHORTFALLS) - short
    assert not fixed, f"no longer short on any seed, remove from KNOWN_SHORTFALLS: {sorted(fixed)}"
