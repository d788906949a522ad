"""Cost of the tamper-evident audit trail: one case change (event stamped, hashed, projected) and `verify`.

    .venv/bin/python bench/store_audit.py [URL] [--cases 500] [--events 10]

URL defaults to a fresh SQLite file under $MS_BENCH_CACHE. Prints wall and CPU seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _common import CACHE, cpu_seconds
from conftest import fake_alerts
from market_surveillance.store import Store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("url", nargs="?")
    ap.add_argument("--cases", type=int, default=500)
    ap.add_argument("--events", type=int, default=10, help="comments per case (plus its ~4 opening events)")
    args = ap.parse_args()
    url = args.url
    if url is None:
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / "store_audit.sqlite"
        for p in CACHE.glob("store_audit.sqlite*"):
            p.unlink()
        url = f"sqlite:///{path}"
    with Store.open(url) as store:
        store.record_run(fake_alerts(args.cases), data_source="bench", config_hash="h")
        t, c = time.perf_counter(), cpu_seconds()
        ids = [store.open_case("b", [f"MS001-{i:06d}"], "a", assignee="b") for i in range(args.cases)]
        n = 0
        for case_id in ids:
            for j in range(args.events):
                store.comment(case_id, f"note {j}", "a")
                n += 1
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        print(
            f"{args.cases} cases opened + {n} comments: {wall:.1f} s wall, {cpu:.1f} s CPU "
            f"({wall / (n + args.cases) * 1000:.1f} ms per change)"
        )
        t, c = time.perf_counter(), cpu_seconds()
        report = store.verify()
        wall, cpu = time.perf_counter() - t, cpu_seconds() - c
        print(
            f"verify {report.cases} cases / {report.events} events: {wall:.2f} s wall, {cpu:.2f} s CPU, ok={report.ok}"
        )


if __name__ == "__main__":
    main()
