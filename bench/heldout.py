"""A held-out-sized day as CSV: ``detect`` in a fresh process against a bare DuckDB scan + group-by of the same files.

Issue #15's first target: a day of ~110k trades + ~0.8M order events given as CSV goes through
``market-surveillance detect`` (every rule + ML) in at most 8× the time a fresh process takes to scan and
group the same CSV files with DuckDB alone.

Usage (repo root): ``.venv/bin/python bench/heldout.py [--trades 180000] [--seed 1] [--runs 1]``.

The day is the simulator's (``generate_to_dir(..., csv=True)``, Parquet copies removed so ``detect`` reads the
CSV). The simulator writes about 3.5 order events per trade where the held-out day had 7.5, so the default
asks for the trades that give ~0.8M order events (the heavier table); ``--trades 110000`` gives the held-out
trade count with ~0.4M order events instead. The script prints the rows of both tables.

The baseline is one fresh ``python`` process that opens DuckDB and, for every CSV table of the folder, scans
it and groups it (trades by asset: count and notional; order events by account and event: count; any other
table: rows per first column). Both timings include interpreter start-up. CPU seconds (user + system of the
child) are printed next to wall seconds because the benchmark machine is shared.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import CACHE

SCAN = r"""
import sys
from pathlib import Path
import duckdb
con = duckdb.connect()
for f in sorted(Path(sys.argv[1]).glob("*.csv")):
    src = f"read_csv('{f}', header=true)"
    if f.stem == "trades":
        q = f"SELECT asset, count(*), sum(price * qty) FROM {src} GROUP BY asset"
    elif f.stem == "orders":
        q = f"SELECT account_id, event, count(*) FROM {src} GROUP BY ALL"
    else:
        first = con.execute(f"SELECT * FROM {src} LIMIT 0").description[0][0]
        q = f'SELECT "{first}", count(*) FROM {src} GROUP BY ALL'
    con.execute(q).fetchall()
"""


def ensure_day(trades: int, seed: int) -> Path:
    """The CSV day (cached between runs): every table as ``<table>.csv`` only."""
    out = CACHE / f"heldout-{trades}-seed-{seed}-csv"
    if not (out / "orders.csv").exists():
        from market_surveillance.simulate.generate import generate_to_dir

        t0 = time.perf_counter()
        generate_to_dir(out, seed=seed, trades=trades, csv=True)
        for p in out.glob("*.parquet"):
            p.unlink()  # Parquet wins over CSV in a canonical folder
        print(f"generated {out} in {time.perf_counter() - t0:.1f}s")
    return out


def csv_rows(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f) - 1


def timed(cmd: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system) of one child process; its output is discarded."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trades", type=int, default=180_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1, help="repetitions; the best (lowest wall) is printed")
    args = ap.parse_args()
    day = ensure_day(args.trades, args.seed)
    n_tr, n_or = csv_rows(day / "trades.csv"), csv_rows(day / "orders.csv")
    detect = [sys.executable, "-m", "market_surveillance.cli", "detect", "--data", str(day)]
    scan = [sys.executable, "-c", SCAN, str(day)]
    d = min((timed(detect) for _ in range(args.runs)), key=lambda x: x[0])
    s = min((timed(scan) for _ in range(args.runs)), key=lambda x: x[0])
    load = os.getloadavg()
    print(f"day: {day} ({n_tr:,} trades + {n_or:,} order events, CSV)")
    print(f"detect (fresh process, all rules + ML): {d[0]:6.2f} s wall {d[1]:6.2f} s CPU")
    print(f"DuckDB scan + group-by (fresh process): {s[0]:6.2f} s wall {s[1]:6.2f} s CPU")
    print(f"ratio: {d[0] / s[0]:.1f}x wall, {d[1] / s[1]:.1f}x CPU (target <= 8x)")
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
