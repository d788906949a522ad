"""Import + detection on the real samples in ../shared/data/real, and pump & dump recall on Binance pumps.

Run from the repo root: ``.venv/bin/python bench/real.py`` (optional ``--data DIR``). Prints, per file:
rows, import seconds, detection seconds (every registered rule, default params), rows/s; then for each
labelled pump (``binance_pumps_labels.csv``): the delay from ``pump_time_utc`` to the first
pump_and_dump alert on that symbol (the alert's window start; negative = before the announcement), and
the pump_and_dump alerts on the file's other days (alerts per symbol-day). Nothing is tuned per file.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import time
from collections import Counter
from pathlib import Path

import pyarrow.compute as pc

from market_surveillance.io.adapters import open_source
from market_surveillance.pipeline import run_rules
from market_surveillance.rules.config import build_rules, load_config

ROOT = Path(__file__).resolve().parents[1]
MATCH_S = 120  # acceptance: alerted within 120 s of the announced start


def _run(path: Path, fmt: str, date: str | None = None):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    src = open_source(path, fmt, date=date)
    t1 = time.perf_counter()
    res = run_rules(src.tables, src.profile, build_rules(load_config(None)))
    t2 = time.perf_counter()
    c = src.counts.get("messages") or src.counts["trades"]
    return src, res, c["rows_in"], t1 - t0, t2 - t1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    args = ap.parse_args()
    data: Path = args.data
    print(f"{'file':48} {'rows':>8} {'import s':>9} {'detect s':>9} {'rows/s':>9} alerts")
    tot_rows = tot_s = 0.0
    lob = data / "lobster" / "AAPL_2012-06-21_34200000_37800000_message_50.csv"
    _, res, n, ti, td = _run(lob, "lobster", "2012-06-21")
    tot_rows, tot_s = tot_rows + n, tot_s + ti + td
    ran = sum(r.status == "ran" for r in res.runs)
    print(
        f"{lob.name:48} {n:>8,} {ti:>9.2f} {td:>9.2f} {n / (ti + td):>9,.0f} {res.alerts.num_rows}"
        f"  ({ran} rules ran, {len(res.runs) - ran} skipped)"
    )
    labels = list(csv.DictReader((data / "binance_pumps_labels.csv").open()))
    pumps = []
    for lab in labels:
        path = data / "binance_pumps" / lab["file"]
        src, res, n, ti, td = _run(path, "ccxt")
        tot_rows, tot_s = tot_rows + n, tot_s + ti + td
        print(f"{path.name:48} {n:>8,} {ti:>9.2f} {td:>9.2f} {n / (ti + td):>9,.0f} {res.alerts.num_rows}")
        al = res.alerts.filter(pc.equal(res.alerts["rule_name"], "pump_and_dump"))
        t = src.tables["trades"]
        days = {d.date() for d in t.select(d=t.ts.truncate("D")).distinct().to_pyarrow()["d"].to_pylist()}
        pumps.append((lab, al.to_pylist(), days))
    print(f"total: {tot_rows:,.0f} rows in {tot_s:.1f} s = {tot_rows / tot_s:,.0f} rows/s (import + detect)")
    print()
    print(
        f"{'pump':8} {'announced (UTC)':20} {'delay s':>8} {'ok':>3} {'other alerts':>12} {'other days':>10}"
        f" {'per sym-day':>11} {'max/day':>7}"
    )
    ok_all = True
    for lab, alerts, days in pumps:
        pt = dt.datetime.fromisoformat(lab["pump_time_utc"].replace("Z", "+00:00"))
        asset = f"{lab['symbol']}-{lab['quote']}"
        mine = sorted((a for a in alerts if a["asset"] == asset), key=lambda a: a["window_start"])
        near = [a for a in mine if abs((a["window_start"] - pt).total_seconds()) <= 3600]
        delay = (near[0]["window_start"] - pt).total_seconds() if near else None
        ok = delay is not None and delay <= MATCH_S
        ok_all &= ok
        others = [a for a in mine if a["window_start"].date() != pt.date()]
        per_day = Counter(a["window_start"].date() for a in others)
        n_days = len(days - {pt.date()})
        print(
            f"{lab['symbol']:8} {pt:%Y-%m-%d %H:%M}     {delay if delay is not None else float('nan'):>8.1f}"
            f" {'yes' if ok else 'NO':>3} {len(others):>12} {n_days:>10} {len(others) / n_days:>11.2f}"
            f" {max(per_day.values(), default=0):>7}"
        )
    print(f"every labelled pump alerted within {MATCH_S} s: {'yes' if ok_all else 'no'}")


if __name__ == "__main__":
    main()
