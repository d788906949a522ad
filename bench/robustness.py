"""Robustness scorecard: every rule (ML included) with its defaults on randomised worlds and clean worlds.

Each seed draws its own universe over five liquidity tiers (BTC-like major … micro-cap thin token) and
injects every variant of every typology (``simulate(seed, world="random")``); clean worlds have the same
kind of universe and no scenarios. Prints recall per typology × variant × tier (pooled over seeds, with the
lowest single seed), precision per rule (pooled), alerts per 100k trades on the clean worlds, and every
acceptance criterion not met (recall ≥ 0.95, precision ≥ 0.90, ≤ 5 clean alerts per 100k trades).

Usage: .venv/bin/python bench/robustness.py [--seeds 1 2 3 4 5] [--clean-seeds 101 102] [--scale small]
       [--internal-transfers 20] [--json out.json] [--check]   (--check: exit 1 when a criterion is not met)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from market_surveillance.evaluate import CLEAN_ALERTS_PER_100K, PRECISION_FLOOR, RECALL_FLOOR, robustness


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--clean-seeds", type=int, nargs="*", default=[101, 102])
    ap.add_argument("--scale", default="small")
    ap.add_argument(
        "--internal-transfers",
        type=int,
        default=20,
        help="re-run the first clean world with this many innocent internal transfers (0: skip)",
    )
    ap.add_argument("--json", type=Path, help="also write the scorecard as JSON")
    ap.add_argument("--check", action="store_true", help="exit 1 when an acceptance criterion is not met")
    args = ap.parse_args()

    t0 = time.perf_counter()

    def progress(kind: str, seed: int, card: object) -> None:
        n = card.extra.get("n_trades", 0)  # type: ignore[attr-defined]
        print(
            f"  {kind} world seed {seed}: {n:,} trades, {card.n_alerts} alerts, "  # type: ignore[attr-defined]
            f"{card.n_labels} labels ({time.perf_counter() - t0:.0f}s)",
            file=sys.stderr,
        )

    rob = robustness(
        args.seeds,
        args.clean_seeds,
        args.scale,
        on_world=progress,
        internal_transfers=args.internal_transfers,
    )
    seeds = ", ".join(map(str, args.seeds))
    print(
        f"robustness scorecard: random worlds seeds {seeds}; clean worlds seeds "
        f"{', '.join(map(str, args.clean_seeds)) or '-'}; scale {args.scale}"
    )

    print(
        f"\n{'recall per typology / variant / tier':<58}{'labels':>7}{'found':>7}{'recall':>8}{'min seed':>9}"
    )
    for key, r in rob.recall().items():
        mark = "" if r["recall"] >= RECALL_FLOOR else "  <"
        print(
            f"{key:<58}{r['labels']:>7}{r['detected']:>7}{r['recall']:>8.2f}{r['min_seed_recall']:>9.2f}{mark}"
        )

    print(f"\n{'precision per rule':<34}{'alerts':>8}{'true':>7}{'precision':>10}")
    for rule, p in rob.precision().items():
        prec = "n/a" if p["precision"] is None else f"{p['precision']:.2f}"
        mark = "" if p["precision"] is None or p["precision"] >= PRECISION_FLOOR else "  <"
        print(f"{p['rule_id'] + ' ' + rule:<34}{p['alerts']:>8}{p['true']:>7}{prec:>10}{mark}")

    clean = rob.clean_rate()
    if args.clean_seeds:
        print(
            f"\nclean worlds: {clean['alerts']} alerts in {clean['trades']:,} trades = "
            f"{clean['alerts_per_100k_trades']:.2f} per 100k trades (target ≤ {CLEAN_ALERTS_PER_100K})"
        )
        for rule, rate in clean["per_rule"].items():
            print(f"  {rule:<32}{rate:>8.2f} per 100k")

    if rob.transfers is not None:
        seed, n, _ = rob.transfers
        added = rob.transfer_alerts()
        print(
            f"\nknown false positive: {n} innocent internal transfers between accounts of one owner added to clean "
            f"world {seed}: {sum(added.values())} more alerts"
            + (" (" + ", ".join(f"{r} {k:+d}" for r, k in added.items()) + ")" if added else "")
        )

    short = rob.shortfalls()
    print(f"\n{len(short)} acceptance shortfall(s)" + (":" if short else ""))
    for line in short:
        print(f"  {line}")
    print(f"\n{time.perf_counter() - t0:.0f}s")
    if args.json:
        args.json.write_text(json.dumps(rob.to_dict(), indent=2))
    return 1 if args.check and short else 0


if __name__ == "__main__":
    raise SystemExit(main())
