"""One online micro-batch at a chosen event time: seconds per rule, and optionally EXPLAIN ANALYZE.

Fills the `watch` DuckDB buffer with the day up to ``--at`` minus ``--span`` (no rule runs while filling,
so this takes seconds, not the minutes of a replay; the kept bars are brought up to date), appends the
batch's events, rebuilds the shared norms as `watch` would for that batch, then runs each chosen rule
``--repeat`` times on the batch (its cut, ``decide_from`` and ``decide_until`` exactly as `watch` sets
them) and prints each run's wall and CPU seconds: the first run of the first rule reading kept bars pays
their update for the batch. ``--explain`` adds the top operators of DuckDB's ``EXPLAIN ANALYZE`` of those
rules' compiled SQL.

Usage (from the repo root): ``.venv/bin/python bench/online_batch.py --data DAY --at 2024-03-01T20:00
--span 1900 --rules MS017,MS015 [--explain]``. DAY: a folder from ``generate_to_dir(DAY, seed=1,
trades=1_000_000)`` (the `bench/online.py --data` day).
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import pyarrow.compute as pc


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _explain(con, sql: str, top: int = 15) -> None:  # type: ignore[no-untyped-def]
    """The operators that took the most time in ``sql``, with their rows (DuckDB's JSON profile)."""
    import json

    (_, plan), *_ = con.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").fetchall()
    ops: list[tuple[float, str, int, str]] = []

    def walk(node: dict, depth: int) -> None:  # type: ignore[type-arg]
        extra = node.get("extra_info") or {}
        what = " ".join(
            f"{k}={v}" for k, v in extra.items() if k in ("Table", "Conditions", "Groups", "Join Type")
        )
        name = node.get("name") or node.get("operator_name") or ""
        timing = node.get("timing", node.get("operator_timing", 0.0))
        rows = node.get("intermediate_rows", node.get("operator_cardinality", 0))
        ops.append((float(timing or 0.0), name.strip(), int(rows or 0), what))
        for child in node.get("children", []):
            walk(child, depth + 1)

    root = json.loads(plan)
    for node in root.get("operator", []) if isinstance(root, dict) else root:
        walk(node, 0)
    total = sum(o[0] for o in ops)
    print(f"  operator time summed over threads {total:.3f} s; top {top}:")
    for t, name, rows, what in sorted(ops, reverse=True)[:top]:
        print(f"  {t:7.3f} s  {rows:>10,} rows  {name}  {what[:160]}")


def main() -> None:
    from market_surveillance import online
    from market_surveillance.rules.config import build_rules

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--at", required=True, help="the batch's end, event time (ISO, UTC)")
    ap.add_argument("--span", type=float, default=1900.0, help="the batch's span, seconds")
    ap.add_argument("--step", default="5s")
    ap.add_argument("--rules", default="", help="rule ids, comma-separated (default: every runnable rule)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--explain", action="store_true")
    args = ap.parse_args()

    now = int(np.datetime64(args.at, "us").astype(np.int64))
    span = int(args.span * online.US)
    step_us = int(online.parse_duration(args.step) * online.US)
    whole = online.read_any(args.data, "canonical")
    static = {k: online.conform(k, v) for k, v in whole.items() if k in online.STATIC}
    pending = {k: online._with_ts_us(k, v) for k, v in whole.items() if k in online.TIMED}
    schemas = {k: v.schema for k, v in pending.items()}
    rules = build_rules()
    profile = online._profile(pending, static, schemas)
    runnable = [r for r in rules if r.skip_reason(profile) is None]
    state = online.OnlineState(runnable, step_us)
    t0 = time.perf_counter()
    buffer = online.DuckDBBuffer(static, schemas, runnable)
    keep = max(state.max_horizon_us(span), online.NORMS_S * online.US if buffer.shared else 0)
    first = None
    batch = {}
    for name, tab in pending.items():
        ts = tab["ts_us"]
        # what earlier batches appended, then (after the kept state caught up) this batch's events
        buffer.append(name, tab.filter(pc.and_(pc.greater(ts, now - keep), pc.less_equal(ts, now - span))))
        batch[name] = tab.filter(pc.and_(pc.greater(ts, now - span), pc.less_equal(ts, now)))
        if batch[name].num_rows:
            f = int(batch[name]["ts_us"][0].as_py())
            first = f if first is None else min(first, f)
    if hasattr(buffer, "_refresh_bars"):
        buffer._refresh_bars()
    for name, tab in batch.items():
        buffer.append(name, tab)
    buffer.refresh_norms(first if first is not None else now, now, online.NORMS_EVERY_S * online.US)
    print(f"buffer filled to {args.at} ({buffer.rows():,} events) in {time.perf_counter() - t0:.1f} s")
    wanted = set(filter(None, args.rules.split(",")))
    for rule in runnable:
        if wanted and rule.rule_id not in wanted:
            continue
        cut = now - state.horizon_us(rule, span)
        since = state.decide_from_us(rule, now, span, now - span)
        walls, cpus = [], []
        n = 0
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), _cpu()
            alerts = buffer.run(rule, cut, since, now)
            walls.append(time.perf_counter() - w0)
            cpus.append(_cpu() - c0)
            n = alerts.num_rows
        print(
            f"{rule.rule_id}: wall {', '.join(f'{w:.3f}' for w in walls)} s; "
            f"CPU {', '.join(f'{c:.3f}' for c in cpus)} s; {n} alert rows"
        )
        if args.explain and rule.rule_id in buffer._sql:
            buffer.run(rule, cut, since, now)  # sets the rule's variables
            _explain(buffer.con, buffer._sql[rule.rule_id])


if __name__ == "__main__":
    main()
