"""All rules on ~1M trades and their order events: seconds per rule, total, peak RSS.

``--explain MS003`` instead prints DuckDB's ``EXPLAIN ANALYZE`` of that rule's compiled SQL (operator
timings and cardinalities): the tool used to find what makes a hot rule hot.

Usage: .venv/bin/python bench/detect.py [--trades 1000000] [--engine duckdb|spark] [--explain RULE_ID]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import ensure_data, measure_detect, print_detect


def explain(data: Path, rule_id: str) -> None:
    """Print the compiled SQL's ``EXPLAIN ANALYZE`` for one rule on the DuckDB views of ``data``."""
    import ibis

    from market_surveillance.io.canonical import open_dir
    from market_surveillance.rules.registry import all_rules

    backend, tables, _ = open_dir(data, validate=False)
    matches = [c for c in all_rules() if rule_id in (c.rule_id, c.name)]
    if not matches:
        raise SystemExit(f"unknown rule {rule_id!r}")
    rule = matches[0]()
    sql = ibis.to_sql(rule.expression(tables), dialect="duckdb")
    con = backend.con
    con.execute("PRAGMA enable_profiling = 'query_tree'")
    t0 = time.perf_counter()
    rows = con.execute(f"EXPLAIN ANALYZE {sql}").fetchall()
    print(f"-- {rule.rule_id} {rule.name}: {time.perf_counter() - t0:.2f}s")
    for _, plan in rows:
        print(plan)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--engine", default="duckdb")
    ap.add_argument("--explain", metavar="RULE_ID", help="EXPLAIN ANALYZE one rule (DuckDB) instead")
    args = ap.parse_args()
    data = ensure_data(args.trades)
    if args.explain:
        explain(data, args.explain)
        return
    print_detect(measure_detect(data, args.engine))


if __name__ == "__main__":
    main()
