"""ROC AUC of MS014's account scores against labelled manipulator accounts, per simulator seed.

Usage: ``python bench/ml_auc.py [--scale small] [--seeds 1 2 3 4 5]``. Prints per-seed AUC, the number of
labelled accounts, per-typology mean percentile of their accounts, and the seconds spent scoring.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from market_surveillance.io.canonical import from_arrow
from market_surveillance.ml import account_auc, score_accounts
from market_surveillance.simulate import simulate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--by-typology", action="store_true", help="mean rank percentile per typology")
    args = ap.parse_args()
    aucs = []
    for seed in args.seeds:
        data = simulate(seed, scale=args.scale)
        _, tables, _ = from_arrow(data)
        start = time.perf_counter()
        scores = score_accounts(tables)
        secs = time.perf_counter() - start
        auc = account_auc(scores, data["labels"])
        aucs.append(auc)
        lab = data["labels"].to_pandas()
        n_bad = len({a for accs in lab["accounts"] for a in accs})
        print(
            f"seed {seed}: AUC {auc:.3f}  accounts {len(scores)}  manipulators {n_bad}  scoring {secs:.1f}s"
        )
        if args.by_typology:
            pct = dict(zip(scores["account_id"], 1 - (scores["rank"] - 1) / len(scores), strict=True))
            for typ, grp in lab.groupby("typology"):
                vals = [pct[a] for accs in grp["accounts"] for a in accs if a in pct]
                if vals:
                    print(f"    {typ:<26} mean percentile {np.mean(vals):.3f}  min {np.min(vals):.3f}")
    print(f"mean AUC {np.mean(aucs):.3f}  min {np.min(aucs):.3f}")


if __name__ == "__main__":
    main()
