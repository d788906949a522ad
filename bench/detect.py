"""All rules on ~1M trades and their order events: seconds per rule, total, peak RSS.

Usage: .venv/bin/python bench/detect.py [--trades 1000000] [--engine duckdb]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import ensure_data, measure_detect, print_detect


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--engine", default="duckdb")
    args = ap.parse_args()
    data = ensure_data(args.trades)
    print_detect(measure_detect(data, args.engine))


if __name__ == "__main__":
    main()
