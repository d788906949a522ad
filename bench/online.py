"""Online replay throughput and micro-batch latency: a synthetic day through every rule at max speed.

Run from the repo root: ``.venv/bin/python bench/online.py --trades 1000000`` (generates the day into a
temporary folder unless ``--data`` names one). Prints events/s over the whole replay, the p50/p99/max
micro-batch latency, the per-rule seconds and the peak RSS sampled after every batch (flat = bounded state).
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil

from market_surveillance.online import watch
from market_surveillance.rules.config import build_rules
from market_surveillance.simulate import generate_to_dir


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trades", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path)
    ap.add_argument("--step", default="5s")
    ap.add_argument("--max-batch-events", type=int, default=100_000)
    ap.add_argument("--exclude", default="", help="rule ids to leave out, comma-separated")
    args = ap.parse_args()
    data = args.data
    if data is None:
        data = Path(tempfile.mkdtemp()) / "day"
        generate_to_dir(data, seed=1, trades=args.trades, csv=False)
    rules = [r for r in build_rules() if r.rule_id not in set(filter(None, args.exclude.split(",")))]
    proc = psutil.Process()
    rss: list[float] = []

    def on_batch(stats, changed) -> None:  # type: ignore[no-untyped-def]
        rss.append(proc.memory_info().rss / 2**30)

    t0, c0 = time.perf_counter(), _cpu()
    res = watch(data, rules, step=args.step, max_batch_events=args.max_batch_events, on_batch=on_batch)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    lat = np.array([b.seconds for b in res.batches])
    per_rule: Counter[str] = Counter()
    for b in res.batches:
        per_rule.update(b.rule_seconds)
    n = res.events
    print(f"rules: {len(rules)} ({', '.join(r.rule_id for r in rules)})")
    print(
        f"events: {n:,} in {len(res.batches)} micro-batches (step {args.step}, ≤ {args.max_batch_events:,} events)"
    )
    print(
        f"wall (incl. reading the source): {wall:.1f} s; replay loop {lat.sum():.1f} s; "
        f"CPU (user + system, all threads) {cpu:.1f} s"
    )
    print(f"throughput: {n / wall:,.0f} events/s overall, {n / lat.sum():,.0f} events/s in the loop")
    print(
        f"micro-batch latency: p50 {np.percentile(lat, 50):.2f} s, p99 {np.percentile(lat, 99):.2f} s, max {lat.max():.2f} s"
    )
    q = max(1, len(rss) // 4)
    print(
        "RSS GiB by quarter of the replay (max): "
        + ", ".join(f"{max(rss[i : i + q]):.2f}" for i in range(0, len(rss), q))
        + f"; peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}"
    )
    print("seconds per rule: " + ", ".join(f"{k} {v:.1f}" for k, v in per_rule.most_common()))
    print(f"alerts: {len(res.alerts)}")
    # where the tail latency comes from: the slowest batches and the rules that took most of them
    for b in sorted(res.batches, key=lambda b: -b.seconds)[:3]:
        top = ", ".join(f"{k} {v:.1f}" for k, v in Counter(b.rule_seconds).most_common(3))
        outside = b.seconds - sum(b.rule_seconds.values())
        print(
            f"slow batch: {b.seconds:.2f} s, {b.events:,} events up to {np.datetime64(b.now_us, 'us')}"
            f" ({top}; outside the rules {outside:.1f})"
        )
    outside = lat.sum() - sum(per_rule.values())
    phases: Counter[str] = Counter()
    for b in res.batches:
        phases.update(getattr(b, "phase_seconds", {}))
    split = ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
    print(f"outside the rules: {outside:.1f} s ({split}; the rest: reconcile of detached jobs, slicing the batch)")
    print(
        f"final flush (the detached jobs queued by the last batches, waited for after it): {getattr(res, 'flush_seconds', 0.0):.1f} s"
    )


if __name__ == "__main__":
    main()
