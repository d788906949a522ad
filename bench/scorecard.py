"""Acceptance scorecard through the command line: generate → detect → evaluate --json for several seeds.

Prints recall per typology and precision per rule for each seed (and the minimum over seeds), and the ML
account AUC. Usage: .venv/bin/python bench/scorecard.py [--seeds 1 2 3 4 5] [--scale small] [--world random]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-m", "market_surveillance.cli"]


def run_seed(seed: int, scale: str, root: Path, world: str = "reference") -> dict:
    data = root / f"seed{seed}"
    subprocess.run(
        [
            *CLI,
            "generate",
            "--out",
            str(data),
            "--seed",
            str(seed),
            "--scale",
            scale,
            "--no-csv",
            "--world",
            world,
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [*CLI, "detect", "--data", str(data), "--out", str(data / "alerts.parquet")],
        check=True,
        capture_output=True,
    )
    out = subprocess.run(
        [*CLI, "evaluate", "--data", str(data), "--alerts", str(data / "alerts.parquet"), "--json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--scale", default="small")
    ap.add_argument("--world", default="reference", help="reference | random (see bench/robustness.py)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cards = {s: run_seed(s, args.scale, Path(tmp), args.world) for s in args.seeds}
    seeds = list(cards)
    typs = sorted({t for c in cards.values() for t in c["recall"]})
    print(f"{'recall per typology':<34}" + "".join(f"{'seed ' + str(s):>9}" for s in seeds) + f"{'min':>8}")
    for t in typs:
        vals = [cards[s]["recall"].get(t, {}).get("recall") for s in seeds]
        print(f"{t:<34}" + "".join(f"{v:>9.2f}" for v in vals) + f"{min(vals):>8.2f}")
    rules = list(next(iter(cards.values()))["precision"])
    print(
        f"\n{'precision per rule (true/alerts)':<34}"
        + "".join(f"{'seed ' + str(s):>9}" for s in seeds)
        + f"{'min':>8}"
    )
    for r in rules:
        cells, vals = [], []
        for s in seeds:
            p = cards[s]["precision"][r]
            cells.append(f"{p['true']}/{p['alerts']}")
            if p["precision"] is not None:
                vals.append(p["precision"])
        print(
            f"{r:<34}" + "".join(f"{c:>9}" for c in cells) + (f"{min(vals):>8.2f}" if vals else f"{'n/a':>8}")
        )
    aucs = [cards[s].get("ml_account_auc") for s in seeds]
    print(
        "\nml_account_auc "
        + "  ".join(
            f"seed {s}: {a:.3f}" if isinstance(a, float) else f"seed {s}: {a}"
            for s, a in zip(seeds, aucs, strict=True)
        )
    )


if __name__ == "__main__":
    main()
