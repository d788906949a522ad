"""LOBSTER book check on the real AAPL message file against an independently reconstructed orderbook file.

Run from the repo root: ``.venv/bin/python bench/lobster_book.py [--messages N] [--levels L]``. The shared
samples hold no LOBSTER orderbook file, so one is written by ``testing.lobster_orderbook_lines`` (a plain
per-order reconstruction sharing no code with ``book.py``) for the first N messages, with the orders from
before the file resting at the size the file later removes from them plus two untouched resting orders
(seeded by the check from row 1). Prints the check's line and its wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from market_surveillance.io.lobster_book import check_book
from market_surveillance.testing import lobster_orderbook_lines

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "data" / "real" / "lobster" / "AAPL_2012-06-21_34200000_37800000_message_50.csv"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=91_997)
    ap.add_argument("--levels", type=int, default=50)
    args = ap.parse_args()
    lines = REAL.read_text(encoding="utf-8-sig").splitlines()[: args.messages]
    seen: set[int] = set()
    pre: dict[int, list[int]] = {}
    for line in lines:
        _, typ, oid, size, price, d = (int(float(x)) for x in line.split(","))
        if typ == 1:
            seen.add(oid)
        elif typ in (2, 3, 4) and oid not in seen:
            pre.setdefault(oid, [0, price, d])[0] += size
    resting = [(k, s, p, d) for k, (s, p, d) in pre.items()] + [(1, 300, 5850000, 1), (2, 500, 5870000, -1)]
    with tempfile.TemporaryDirectory() as tmp:
        name = REAL.name.replace("message_50", f"message_{args.levels}")
        m = Path(tmp) / name
        m.write_text("\n".join(lines) + "\n")
        o = Path(tmp) / name.replace("message", "orderbook")
        o.write_text("\n".join(lobster_orderbook_lines(lines, args.levels, resting)) + "\n")
        t0 = time.perf_counter()
        res = check_book(m, o)
        print(f"{res.line()} (levels {res.levels}, seeded {res.seeded_levels}) in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
