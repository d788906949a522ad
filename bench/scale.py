"""Scale benchmark: detection (all rules + ML) at 1M, 3M and 10M trades on DuckDB.

Each size runs in a fresh process so peak RSS is that size's own. Prints per-rule seconds, total, rows/s,
peak RSS, the time of a plain baseline (one Parquet scan + one group-by over the same files) and the ratio
total/baseline, and the 1M→10M cost ratio (linear growth ≈ 10).

Usage: .venv/bin/python bench/scale.py [--sizes 1000000 3000000 10000000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import ensure_data, measure_detect, print_detect


def baseline_seconds(data: Path) -> float:
    """One scan of trades + orders with a group-by each: the floor any detection pass pays."""
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    for table in ("trades", "orders"):
        con.execute(
            f"SELECT asset, venue, count(*), sum(price * qty) FROM read_parquet('{data}/{table}.parquet') "
            "GROUP BY ALL"
        ).fetchall()
    return time.perf_counter() - t0


def child(size: int) -> None:
    data = ensure_data(size)
    base = baseline_seconds(data)
    m = measure_detect(data)
    m["baseline_s"] = base
    print_detect(m)
    print(f"baseline scan+group-by {base:.2f}s; total/baseline {m['total_s'] / base:.1f}×")
    print("JSON " + json.dumps({k: v for k, v in m.items() if k != "rules"}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    results = {}
    for size in args.sizes:
        print(f"=== {size:,} trades ===", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size)], check=True, capture_output=True, text=True
        ).stdout
        print(out, flush=True)
        line = next(ln for ln in out.splitlines() if ln.startswith("JSON "))
        results[size] = json.loads(line[5:])
    if len(results) > 1:
        lo, hi = min(results), max(results)
        ratio = results[hi]["total_s"] / results[lo]["total_s"]
        print(f"cost ratio {lo:,}→{hi:,} trades: {ratio:.1f}× for {hi / lo:.0f}× the data")


if __name__ == "__main__":
    main()
