"""Simulator throughput: trades/s and peak RSS for one generated day (default 1M background trades).

Usage: .venv/bin/python bench/generate.py [--trades 1000000] [--out /tmp/ms-bench/gen]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from market_surveillance.simulate import generate_to_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=Path("/tmp/ms-bench/gen"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows = generate_to_dir(args.out, seed=args.seed, trades=args.trades, csv=False)
    secs = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"{rows['trades']:,} trades + {rows['orders']:,} order events in {secs:.1f}s "
        f"({rows['trades'] / secs:,.0f} trades/s, {(rows['trades'] + rows['orders']) / secs:,.0f} rows/s), "
        f"peak RSS {rss:.2f} GiB, {rows['labels']} labelled scenarios"
    )


if __name__ == "__main__":
    main()
