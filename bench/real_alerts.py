"""Every alert the default rules raise on each real sample in ../shared/data/real, one line each.

Run from the repo root: ``.venv/bin/python bench/real_alerts.py [--data DIR] [--only lobster|binance_public|pumps]``.
Prints per sample: rows in, the rules that ran, alerts per rule and per instrument-day (UTC days with
trades), then one line per alert (``rule asset window value — explanation``) for a reviewer to check.
``docs/real-data.md`` quotes its output.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path

from market_surveillance.io.adapters import open_source
from market_surveillance.pipeline import run_rules
from market_surveillance.rules.config import build_rules, load_config

ROOT = Path(__file__).resolve().parents[1]


def _report(label: str, path: Path, fmt: str, date: str | None = None) -> None:
    t0 = time.perf_counter()
    src = open_source(path, fmt, date=date)
    res = run_rules(src.tables, src.profile, build_rules(load_config(None)))
    secs = time.perf_counter() - t0
    tr = src.tables["trades"]
    days = tr.group_by([tr.asset, tr.ts.date().name("d")]).aggregate(n=tr.count()).to_pyarrow()
    n_days = days.num_rows
    c = src.counts.get("messages") or src.counts["trades"]
    ran = [r for r in res.runs if r.status == "ran"]
    print(f"\n== {label}: {c['rows_in']:,} rows, {n_days} instrument-day(s), {secs:.1f} s")
    print("ran: " + ", ".join(f"{r.rule_id} {r.name} ({r.alerts})" for r in ran))
    per_rule = Counter(res.alerts["rule_id"].to_pylist())
    total = res.alerts.num_rows
    print(f"alerts: {total} ({total / max(n_days, 1):.2f} per instrument-day); by rule: {dict(sorted(per_rule.items()))}")
    rows = sorted(res.alerts.to_pylist(), key=lambda a: (a["window_start"], a["rule_id"]))
    for a in rows:
        expl = (a.get("explanation") or "").replace("\n", " ")
        print(
            f"  {a['rule_id']} {a['rule_name']} {a['asset']} {a['window_start']:%Y-%m-%d %H:%M:%S}→"
            f"{a['window_end']:%H:%M:%S} value={a['value']:.3g} — {expl[:160]}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    ap.add_argument("--only", choices=("lobster", "binance_public", "pumps"), default=None)
    args = ap.parse_args()
    real: Path = args.data
    if args.only in (None, "lobster"):
        for f in sorted((real / "lobster").glob("*_message_*.csv")):
            _report(f"lobster {f.name}", f, "lobster")
    if args.only in (None, "binance_public"):
        _report("binance_public (Binance dumps, trades files; aggTrades skipped)", real / "binance_public", "binance")
    if args.only in (None, "pumps"):
        for f in sorted((real / "binance_pumps").glob("*.csv")):
            _report(f"binance_pumps {f.name}", f, "ccxt")


if __name__ == "__main__":
    main()
