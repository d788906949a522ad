"""Small robustness scorecard (issue 12): one randomised world and one clean world, every rule (ML included)
with its defaults, against the acceptance floors. ``bench/robustness.py`` runs the full version (≥ 5 seeds,
figures in docs/evaluation.md).

Recall is checked per typology/variant (pooled over the liquidity tiers the world happened to draw), precision
per rule, and the alert rate of the clean world. ``KNOWN_SHORTFALLS`` lists what the rules do not reach yet,
each with its reason (docs/rules.md holds the measured figures); the test fails on any other shortfall and on a
listed one that has been fixed, so the list stays true.
"""

from __future__ import annotations

import pytest

from market_surveillance.evaluate import (
    CLEAN_ALERTS_PER_100K,
    PRECISION_FLOOR,
    RECALL_FLOOR,
    Robustness,
    robustness,
)

SEED, CLEAN_SEED = 11, 111

#: "recall <typology>/<variant>" | "precision <rule>" | "clean" -> why it is not reached yet
KNOWN_SHORTFALLS: dict[str, str] = {
    # seeds 11/111 with the rules of branch recall-12 (five-seed figures: docs/evaluation.md); the rules side
    # shrinks this list as rules reach the floors (front_running/small_profit and the clean rate left it there)
    "precision cancel_to_fill": "an unlabelled account",
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rob() -> Robustness:
    return robustness([SEED], [CLEAN_SEED], scale="small")


def _shortfalls(rob: Robustness) -> dict[str, str]:
    out: dict[str, str] = {}
    pooled: dict[str, list[int]] = {}
    for key, r in rob.recall().items():
        typ, variant, _tier = key.split("/")
        p = pooled.setdefault(f"{typ}/{variant}", [0, 0])
        p[0] += r["detected"]
        p[1] += r["labels"]
    for key, (det, n) in pooled.items():
        if det / n < RECALL_FLOOR:
            out[f"recall {key}"] = f"{det}/{n}"
    for rule, p in rob.precision().items():
        if p["precision"] is not None and p["precision"] < PRECISION_FLOOR:
            out[f"precision {rule}"] = f"{p['true']}/{p['alerts']}"
    clean = rob.clean_rate()
    if clean["alerts_per_100k_trades"] > CLEAN_ALERTS_PER_100K:
        out["clean"] = f"{clean['alerts_per_100k_trades']:.1f} alerts per 100k trades: {clean['per_rule']}"
    return out


def test_robustness_small_world_every_typology_variant_and_rule_scored(rob: Robustness):
    recall, precision = rob.recall(), rob.precision()
    variants = {k.rsplit("/", 1)[0] for k in recall}
    typologies = {k.split("/")[0] for k in recall}
    assert len(typologies) == 14 and len(variants) >= 2 * len(typologies)
    assert {"ml_anomaly", "owner_linked_trade", "marking_the_close"} <= set(precision)
    assert rob.clean_rate()["trades"] > 10_000


def test_robustness_small_world_meets_floors_except_known_shortfalls(rob: Robustness):
    got = _shortfalls(rob)
    new = {k: v for k, v in got.items() if k not in KNOWN_SHORTFALLS}
    fixed = sorted(set(KNOWN_SHORTFALLS) - set(got))
    assert not new, f"below the acceptance floors: {new}"
    assert not fixed, f"no longer short, remove from KNOWN_SHORTFALLS: {fixed}"
