"""Online pump detection on the 21 real Binance pumps: decision delay from the onset, false alerts per pair-day.

Run from the repo root: ``.venv/bin/python bench/pumps.py`` (``--rule MS015`` to score another rule,
``--online`` to replay each file through ``watch``'s runner instead of one batch run: same alerts, slower).

Per labelled file (``../shared/data/real/binance_pumps_labels.csv``, announced times in UTC):

* onset: found from the trades alone, without the detector: the first buyer-initiated trade from 2 minutes
  before the announced time on that starts a 20 s span holding at least 10 buyer-initiated trades and 5
  times those of the preceding hour's busiest 20 s (the crowd's first market buy orders);
* delay: the first alert of the rule on that pair whose window touches [onset − 10 min, onset + 1 h], its
  ``detected_at`` minus the onset (what an analyst watching would have seen);
* false alerts: the rule's other alerts on that pair, per pair-day of data in the file.

One parameter set for every file (the rule's defaults): nothing is tuned per file.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from market_surveillance.io.adapters import open_source, read_source
from market_surveillance.rules.config import build_rules

ROOT = Path(__file__).resolve().parents[1]
US = 1_000_000
BEFORE_S, AFTER_S = 600, 3600


def onset_us(trades: pa.Table, announced_us: int) -> int:
    """The first trade of the burst (see the module docstring); the announced time when none qualifies."""
    span = 20 * US
    # the busiest 20 s of the hour before the search window: the pair's own "normal" peak
    # the crowd buys: the onset is judged on buyer-initiated trades
    ts = np.sort(trades.filter(pc.equal(trades["aggressor"], "buy"))["ts"].cast(pa.int64()).to_numpy())
    lo = np.searchsorted(ts, announced_us - 3600 * US - 120 * US)
    hi = np.searchsorted(ts, announced_us - 120 * US)
    prior = ts[lo:hi]
    peak = int((np.searchsorted(prior, prior + span) - np.arange(len(prior))).max()) if len(prior) else 0
    need = max(10, 5 * peak)
    start = np.searchsorted(ts, announced_us - 120 * US)
    end = np.searchsorted(ts, announced_us + 1800 * US)
    cand = ts[start:end]
    counts = np.searchsorted(ts, cand + span) - np.arange(start, end)
    ok = np.nonzero(counts >= need)[0]
    return int(cand[ok[0]]) if len(ok) else announced_us


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "real")
    ap.add_argument("--rule", default="MS040")
    ap.add_argument("--online", action="store_true", help="replay each file through the online runner")
    ap.add_argument("--param", action="append", default=[], help="override a param, e.g. episode_gap_s=1")
    args = ap.parse_args()
    over: dict[str, float] = {}
    for kv in args.param:
        k, v = kv.split("=", 1)
        over[k] = float(v) if "." in v else int(v)
    rules = [r for r in build_rules() if args.rule in (r.rule_id, r.name)]
    if over:
        rules = [type(r)(r.params.replace(**over)) for r in rules]
    if not rules:
        raise SystemExit(f"unknown rule {args.rule}")
    labels = list(csv.DictReader((args.data / "binance_pumps_labels.csv").open()))
    print(f"{'file':32} {'onset (UTC)':>20} {'onset-ann s':>11} {'delay s':>8} {'false':>5} {'pair-days':>9}")
    delays: list[float | None] = []
    false_total, days_total = 0, 0.0
    for lab in labels:
        path = args.data / "binance_pumps" / lab["file"]
        announced = dt.datetime.fromisoformat(lab["pump_time_utc"].replace("Z", "+00:00"))
        ann_us = int(announced.timestamp()) * US
        if args.online:
            from market_surveillance.online import watch

            alerts = watch(path, rules, fmt="ccxt", step="5s").alert_table()
            trades = read_source(path, "ccxt")[0]["trades"]
        else:
            src = open_source(path, "ccxt")
            alerts = rules[0].run(src.tables)
            trades = src.tables["trades"].select("ts", "aggressor").to_pyarrow()
        on = onset_us(trades, ann_us)
        ts = trades["ts"].cast(pa.int64())
        days = (pc.max(ts).as_py() - pc.min(ts).as_py()) / US / 86_400
        ws = alerts["window_start"].cast(pa.int64()).to_numpy()
        we = alerts["window_end"].cast(pa.int64()).to_numpy()
        det = alerts["detected_at"].cast(pa.int64()).to_numpy()
        near = (we >= on - BEFORE_S * US) & (ws <= on + AFTER_S * US)
        # the first decision on the pump itself; an episode opened earlier and continued into it counts
        # from its own first decision (negative delay: the pair was already under alert)
        delay = float((det[near].min() - on) / US) if near.any() else None
        n_false = int((~near).sum())
        delays.append(delay)
        false_total += n_false
        days_total += days
        on_txt = dt.datetime.fromtimestamp(on / US, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        d_txt = "missed" if delay is None else f"{delay:.1f}"
        print(
            f"{lab['file']:32} {on_txt:>20} {(on - ann_us) / US:>11.1f} {d_txt:>8} {n_false:>5} {days:>9.1f}"
        )
    found = [d for d in delays if d is not None]
    n = len(delays)
    w25 = sum(d <= 25 for d in found)
    w60 = sum(d <= 60 for d in found)
    print(
        f"\n{args.rule}: {len(found)}/{n} pumps alerted; decided within 25 s of onset: {w25}/{n} "
        f"({100 * w25 / n:.0f} %); within 60 s: {w60}/{n}; median delay "
        f"{np.median(found) if found else float('nan'):.1f} s; false alerts {false_total} over "
        f"{days_total:.1f} pair-days = {false_total / days_total:.3f} per pair-day"
    )


if __name__ == "__main__":
    main()
