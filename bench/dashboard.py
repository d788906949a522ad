"""Cost of one alert's drill-down (what a click in the triage widget redraws) and of its report page.

Usage (repo root): `.venv/bin/python bench/dashboard.py [--data DIR]` — DIR is a run folder with
alerts.sqlite (default: the demo run, made once in the bench cache). Prints, per piece, the median wall and
CPU seconds over the top alert of every rule.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import CACHE, cpu_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=None)
    args = ap.parse_args()
    data = args.data
    if data is None:
        data = CACHE / "dashboard-demo" / "data"
        if not (data / "alerts.sqlite").exists():
            from market_surveillance.demo import run_demo

            run_demo(data)
    from market_surveillance.dashboard import (
        account_panel,
        book_replay_figure,
        drilldown_figure,
        evidence_orders,
        evidence_trades,
        load_run,
        queue,
    )
    from market_surveillance.dashboard.report import alert_report_html

    run = load_run(data, f"sqlite:///{data / 'alerts.sqlite'}")
    q = queue(run.alerts)
    top = q.groupby("rule_id", sort=True).head(1)
    pieces = {
        "drilldown_figure": lambda a: drilldown_figure(a, run.trades, run.orders),
        "evidence tables": lambda a: (evidence_trades(a, run.trades), evidence_orders(a, run.orders)),
        "book_replay_figure": lambda a: book_replay_figure(a, run.orders),
        "account_panel": lambda a: account_panel(a, run.tables, run.store),
        "alert_report_html": lambda a: alert_report_html(run, a["alert_id"]),
    }
    print(f"{data}: {len(q)} alerts, top alert of {len(top)} rules")
    for name, fn in pieces.items():
        wall, cpu = [], []
        for _, a in top.iterrows():
            t0, c0 = time.perf_counter(), cpu_seconds()
            fn(a)
            wall.append(time.perf_counter() - t0)
            cpu.append(cpu_seconds() - c0)
        print(
            f"{name:20s} median wall {statistics.median(wall):6.2f} s  cpu {statistics.median(cpu):6.2f} s  "
            f"max wall {max(wall):6.2f} s"
        )
    run.store.dispose()


if __name__ == "__main__":
    main()
