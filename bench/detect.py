"""All rules on ~1M trades and their order events: seconds per rule, total, peak RSS.

``--explain MS003`` instead prints DuckDB's ``EXPLAIN ANALYZE`` of that rule's compiled SQL (operator
timings and cardinalities): the tool used to find what makes a hot rule hot. ``--only MS006`` times that one
rule alone (its shared intermediates materialised first, as a run does): wall and CPU of the rule, the
process's CPU and peak RSS, alerts — the before/after figure of a change to one rule.

Usage: .venv/bin/python bench/detect.py [--trades 1000000] [--data DIR] [--engine duckdb|spark]
       [--explain RULE_ID | --only RULE_ID]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import cpu_seconds, ensure_data, measure_detect, peak_rss_gib, print_detect


def _open_rule(data: Path, rule_id: str):  # type: ignore[no-untyped-def]
    """The DuckDB backend and views of ``data`` (not validated) and the rule named by id or name."""
    from market_surveillance.io.canonical import open_dir
    from market_surveillance.rules.registry import all_rules

    backend, tables, _ = open_dir(data, validate=False)
    matches = [c for c in all_rules() if rule_id in (c.rule_id, c.name)]
    if not matches:
        raise SystemExit(f"unknown rule {rule_id!r}")
    return backend, tables, matches[0]()


def explain(data: Path, rule_id: str) -> None:
    """Print the compiled SQL's ``EXPLAIN ANALYZE`` for one rule on the DuckDB views of ``data``."""
    import ibis

    backend, tables, rule = _open_rule(data, rule_id)
    sql = ibis.to_sql(rule.expression(tables), dialect="duckdb")
    con = backend.con
    con.execute("PRAGMA enable_profiling = 'query_tree'")
    t0 = time.perf_counter()
    rows = con.execute(f"EXPLAIN ANALYZE {sql}").fetchall()
    print(f"-- {rule.rule_id} {rule.name}: {time.perf_counter() - t0:.2f}s")
    for _, plan in rows:
        print(plan)


def only(data: Path, rule_id: str) -> None:
    """Time one rule on DuckDB: materialise the intermediates it reads, then run it."""
    from market_surveillance.rules import intermediates

    _, tables, rule = _open_rule(data, rule_id)
    c0 = cpu_seconds()
    t = {**tables, **intermediates.materialize(tables, intermediates.needed([rule], tables))}
    t0, c1 = time.perf_counter(), cpu_seconds()
    alerts = rule.run(t)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c1
    print(
        f"{rule.rule_id} {rule.name}: rule {wall:.2f} s wall / {cpu:.2f} s CPU, intermediates "
        f"{c1 - c0:.2f} s CPU, process {cpu_seconds():.2f} s CPU, peak RSS {peak_rss_gib():.2f} GiB, "
        f"{alerts.num_rows} alerts"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--engine", default="duckdb")
    ap.add_argument("--data", type=Path, help="a canonical folder instead of the generated one")
    ap.add_argument("--explain", metavar="RULE_ID", help="EXPLAIN ANALYZE one rule (DuckDB) instead")
    ap.add_argument("--only", metavar="RULE_ID", help="time one rule alone (DuckDB) instead")
    args = ap.parse_args()
    data = args.data or ensure_data(args.trades)
    if args.explain:
        explain(data, args.explain)
        return
    if args.only:
        only(data, args.only)
        return
    print_detect(measure_detect(data, args.engine))


if __name__ == "__main__":
    main()
