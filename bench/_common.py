"""Shared helpers of the benchmarks (run from the repo root: `.venv/bin/python bench/<name>.py`)."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

CACHE = Path("/tmp/ms-bench")


def peak_rss_gib() -> float:
    """Peak resident set size of this process so far, GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


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


def measure_detect(data: Path, engine: str = "duckdb") -> dict:
    """Run every rule (and ML) on ``data`` in this process; return per-rule and total seconds, rows/s, peak RSS."""
    from market_surveillance.pipeline import detect_source

    t0 = time.perf_counter()
    result = detect_source(data, engine=engine)
    total = time.perf_counter() - t0
    trades = row_count(data, "trades")
    orders = row_count(data, "orders")
    return {
        "trades": trades,
        "orders": orders,
        "total_s": total,
        "rows_per_s": (trades + orders) / total,
        "peak_rss_gib": peak_rss_gib(),
        "alerts": result.alerts.num_rows,
        "rules": [(r.rule_id, r.name, r.status, r.seconds, r.alerts) for r in result.runs],
    }


def print_detect(m: dict) -> None:
    print(f"{'rule':<28}{'status':<9}{'seconds':>9}{'alerts':>8}")
    for rule_id, name, status, secs, alerts in m["rules"]:
        print(f"{rule_id} {name:<22}{status:<9}{secs:>9.2f}{alerts:>8}")
    print(
        f"total {m['total_s']:.1f}s for {m['trades']:,} trades + {m['orders']:,} order events "
        f"({m['rows_per_s']:,.0f} rows/s), peak RSS {m['peak_rss_gib']:.2f} GiB, {m['alerts']} alerts"
    )
