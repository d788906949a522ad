"""Shared helpers of the benchmarks (run from the repo root: `.venv/bin/python bench/<name>.py`)."""

from __future__ import annotations

import itertools
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path(os.environ.get("MS_BENCH_CACHE", "/tmp/ms-bench"))


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far, GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all threads, so DuckDB's workers count).

    Reported next to wall seconds because the benchmark machine is shared: wall time inflates with other
    people's load, CPU time much less.
    """
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def ensure_data(trades: int, seed: int = 1) -> Path:
    """A generated dataset with about ``trades`` background trades (cached between runs)."""
    out = CACHE / f"trades-{trades}-seed-{seed}"
    if not (out / "trades.parquet").exists():
        t0 = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "market_surveillance.cli",
                "generate",
                "--out",
                str(out),
                "--seed",
                str(seed),
                "--trades",
                str(trades),
                "--no-csv",
            ],
            check=True,
        )
        print(f"generated {out} in {time.perf_counter() - t0:.1f}s")
    return out


def row_count(data: Path, table: str) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetFile(data / f"{table}.parquet").metadata.num_rows


def measure_detect(data: Path, engine: str = "duckdb", config: Path | None = None) -> dict:
    """Run every rule (and ML) on ``data`` in this process; return per-rule and total seconds, rows/s, peak RSS.

    ``rules`` rows are ``(rule_id, name, status, wall_s, alerts, cpu_s)``; ``open_s`` is the time to open
    and validate the folder (the shared intermediates, materialised once before the first rule, are timed
    apart in ``intermediates_s``). ``config`` is a rules TOML (e.g. ``[disabled]``).
    """
    from market_surveillance.pipeline import detect_source

    marks: list[float] = []

    def on_rule(_rule: object) -> None:
        # called just before each rule: successive marks bracket one rule's CPU time
        marks.append(cpu_seconds())

    t0, c0 = time.perf_counter(), cpu_seconds()
    result = detect_source(data, config, engine=engine, on_rule=on_rule)
    total = time.perf_counter() - t0
    marks.append(cpu_seconds())
    cpu = [b - a for a, b in itertools.pairwise(marks)]
    trades = row_count(data, "trades")
    orders = row_count(data, "orders")
    ran = sum(r.seconds for r in result.runs)
    return {
        "trades": trades,
        "orders": orders,
        "total_s": total,
        "open_s": total - ran - sum(result.intermediates_s.values()),
        "cpu_s": cpu_seconds() - c0,
        "rows_per_s": (trades + orders) / total,
        "peak_rss_gib": peak_rss_gib(),
        "alerts": result.alerts.num_rows,
        "intermediates_s": dict(result.intermediates_s),
        "rules": [
            (r.rule_id, r.name, r.status, r.seconds, r.alerts, c)
            for r, c in zip(result.runs, cpu, strict=False)
        ],
    }


def print_detect(m: dict) -> None:
    print(f"{'rule':<32}{'status':<9}{'wall s':>9}{'cpu s':>9}{'alerts':>8}")
    for rule_id, name, status, secs, alerts, cpu in m["rules"]:
        print(f"{rule_id} {name:<26}{status:<9}{secs:>9.2f}{cpu:>9.2f}{alerts:>8}")
    shared = m.get("intermediates_s", {})
    if shared:
        print("shared intermediates (once per run): " + ", ".join(f"{k} {v:.2f}s" for k, v in shared.items()))
    print(
        f"total {m['total_s']:.1f}s wall ({m['cpu_s']:.1f}s CPU; open+validate {m['open_s']:.1f}s) for "
        f"{m['trades']:,} trades + {m['orders']:,} order events ({m['rows_per_s']:,.0f} rows/s), "
        f"peak RSS {m['peak_rss_gib']:.2f} GiB, {m['alerts']} alerts"
    )
