"""Scale benchmark: detection (all rules + ML) at 1M, 3M and 10M trades on DuckDB.

Each size runs in a fresh process so peak RSS is that size's own. Prints per-rule wall and CPU seconds,
total, rows/s, peak RSS, the time of a plain baseline (one Parquet scan + one group-by over the same files)
and the ratio total/baseline; then a per-rule table across sizes with the smallest→largest cost ratio
(linear growth ≈ the data ratio) and the issue-8 target check (10M: ≤ 60 s, ≤ 8 GiB).

Data comes from `market-surveillance generate --trades N` (cached in $MS_BENCH_CACHE, default /tmp/ms-bench).
The machine is shared: CPU seconds are the steadier figure when others are busy.

Usage: .venv/bin/python bench/scale.py [--sizes 1000000 3000000 10000000] [--config rules.toml]
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

TARGET_S, TARGET_GIB = 60.0, 8.0


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


def child(size: int, config: Path | None) -> None:
    data = ensure_data(size)
    base = baseline_seconds(data)
    m = measure_detect(data, config=config)
    m["baseline_s"] = base
    print_detect(m)
    print(f"baseline scan+group-by {base:.2f}s; total/baseline {m['total_s'] / base:.1f}×")
    print("JSON " + json.dumps(m))


def summary(results: dict[int, dict]) -> None:
    """Per-rule wall seconds across sizes, growth smallest→largest, and the target check."""
    sizes = sorted(results)
    lo, hi = sizes[0], sizes[-1]
    per_rule: dict[str, dict[int, tuple[float, float]]] = {}
    for size in sizes:
        for rule_id, name, status, secs, _alerts, cpu in results[size]["rules"]:
            if status == "ran":
                per_rule.setdefault(f"{rule_id} {name}", {})[size] = (secs, cpu)
    head = "".join(f"{f'{s / 1e6:g}M wall/cpu':>20}" for s in sizes)
    print(f"\n{'rule':<30}{head}{'CPU growth':>12}")
    for rule, by_size in per_rule.items():
        cells = "".join(
            f"{f'{by_size[s][0]:.2f}/{by_size[s][1]:.2f}':>20}" if s in by_size else f"{'-':>20}"
            for s in sizes
        )
        growth = (
            by_size[hi][1] / by_size[lo][1] if lo in by_size and hi in by_size and by_size[lo][1] else 0.0
        )
        print(f"{rule:<30}{cells}{growth:>11.1f}×")
    tot = "".join(f"{results[s]['total_s']:.1f}/{results[s]['cpu_s']:.1f}".rjust(20) for s in sizes)
    print(f"{'total':<30}{tot}")
    print("peak RSS GiB: " + ", ".join(f"{s / 1e6:g}M {results[s]['peak_rss_gib']:.2f}" for s in sizes))
    if len(sizes) > 1:
        wall = results[hi]["total_s"] / results[lo]["total_s"]
        cpu = results[hi]["cpu_s"] / results[lo]["cpu_s"]
        trades = results[hi]["trades"] / results[lo]["trades"]
        print(
            f"cost ratio {lo:,}→{hi:,} trades: {wall:.1f}× wall, {cpu:.1f}× CPU for {trades:.1f}× the trades"
        )
    if hi >= 10_000_000:
        r = results[hi]
        ok = r["total_s"] <= TARGET_S and r["peak_rss_gib"] <= TARGET_GIB
        print(
            f"target at {hi / 1e6:g}M (≤ {TARGET_S:.0f} s, ≤ {TARGET_GIB:.0f} GiB): "
            f"{'met' if ok else 'NOT met'} ({r['total_s']:.1f} s, {r['peak_rss_gib']:.2f} GiB)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    ap.add_argument(
        "--config", type=Path, help="rules TOML, e.g. to time a subset ([disabled] rules = [...])"
    )
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.config)
        return
    results = {}
    for size in args.sizes:
        print(f"=== {size:,} trades ===", flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size)]
            + (["--config", str(args.config)] if args.config else []),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        print("\n".join(ln for ln in out.splitlines() if not ln.startswith("JSON ")), flush=True)
        line = next(ln for ln in out.splitlines() if ln.startswith("JSON "))
        results[size] = json.loads(line[5:])
    summary(results)


if __name__ == "__main__":
    main()
