"""Real processes against one store (SQLite and PostgreSQL): a run killed mid-write, concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable

import pyarrow as pa

from market_surveillance.enums import CaseStatus
from market_surveillance.store import Store

# fork: children inherit the imported modules (fast start); each child opens its own engine
CTX = mp.get_context("fork")
JOIN_TIMEOUT = 120


def _crashing_writer(url: str, alerts: pa.Table, mid_write: mp.synchronize.Event) -> None:
    store = Store.open(url)

    def stall(batch: int) -> None:
        if batch == 1:  # two batches written inside the run's open transaction
            mid_write.set()
            time.sleep(600)

    store._on_batch = stall
    store.record_run(alerts, data_source="doomed", config_hash="h", batch_size=50)


def test_store_run_killed_mid_write_leaves_no_trace(store_url, make_alerts):
    with Store.open(store_url) as store:
        kept = store.record_run(make_alerts(20), data_source="ok", config_hash="h")
    mid_write = CTX.Event()
    # the doomed run re-finds alerts 10..19 and adds 500 new ones
    child = CTX.Process(target=_crashing_writer, args=(store_url, make_alerts(510, start=10), mid_write))
    child.start()
    try:
        assert mid_write.wait(JOIN_TIMEOUT), "writer never reached the middle of its run"
        os.kill(child.pid, signal.SIGKILL)
        child.join(JOIN_TIMEOUT)
    finally:
        if child.is_alive():
            child.kill()
    assert child.exitcode == -signal.SIGKILL

    with Store.open(store_url) as store:
        assert [(r.run_id, r.status) for r in store.runs()] == [(kept, "complete")]
        stored = store.alerts()
        assert stored.num_rows == 20
        assert set(stored["last_run_id"].to_pylist()) == {kept}  # re-found alerts not touched either
        # the store is not left locked: the next run goes through
        store.record_run(make_alerts(510, start=10), data_source="retry", config_hash="h")
        assert store.alert_count() == 520
        assert sorted(r.status for r in store.runs()) == ["complete", "complete"]


def _detector(url: str, make: Callable[..., pa.Table], go: mp.synchronize.Event, runs: int) -> None:
    go.wait(JOIN_TIMEOUT)
    with Store.open(url) as store:
        for k in range(runs):
            # overlapping runs: each re-finds 100 alerts of the previous one and adds 200
            store.record_run(
                make(300, start=1000 + 200 * k), data_source=f"run {k}", config_hash="h", batch_size=100
            )


def _analyst(url: str, go: mp.synchronize.Event, cases: int) -> None:
    go.wait(JOIN_TIMEOUT)
    with Store.open(url) as store:
        for i in range(cases):
            case_id = store.open_case(f"case {i}", [f"MS001-{i:06d}", f"MS001-{i + 1:06d}"], "alice")
            store.assign(case_id, "bob", "alice")
            store.set_status(case_id, "investigating", "bob")
            store.comment(case_id, f"note {i}", "bob")


def test_store_detection_and_analyst_processes_lose_nothing(store_url, make_alerts):
    runs, cases = 5, 12
    with Store.open(store_url) as store:
        store.record_run(make_alerts(40), data_source="seed", config_hash="h")
    go = CTX.Event()
    procs = [
        CTX.Process(target=_detector, args=(store_url, make_alerts, go, runs)),
        CTX.Process(target=_analyst, args=(store_url, go, cases)),
    ]
    for p in procs:
        p.start()
    go.set()
    try:
        for p in procs:
            p.join(JOIN_TIMEOUT)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
    assert [p.exitcode for p in procs] == [0, 0]

    with Store.open(store_url) as store:
        assert store.alert_count() == 40 + 300 + 200 * (runs - 1)
        assert [r.status for r in store.runs()] == ["complete"] * (runs + 1)
        all_cases = store.cases()
        assert len(all_cases) == cases
        for case in all_cases:
            assert (case.status, case.assignee, len(case.alert_ids)) == (CaseStatus.INVESTIGATING, "bob", 2)
            actions = [e.action for e in store.history(case.case_id)]
            assert actions == ["open", "priority", "add_alerts", "assign", "status", "comment"]


def test_store_concurrent_case_updates_on_one_case_all_audited(store_url, make_alerts):
    """Several analysts commenting on the same case at once: every comment lands in the trail."""
    with Store.open(store_url) as store:
        store.record_run(make_alerts(2), data_source="seed", config_hash="h")
        case_id = store.open_case("shared", ["MS001-000000"], "lead")
    writers = 3
    go = CTX.Event()
    procs = [
        CTX.Process(target=_commenter, args=(store_url, case_id, go, f"analyst{i}")) for i in range(writers)
    ]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(JOIN_TIMEOUT)
    assert [p.exitcode for p in procs] == [0] * writers
    with Store.open(store_url) as store:
        comments = [e for e in store.history(case_id) if e.action == "comment"]
    assert len(comments) == writers * 10
    assert {e.actor for e in comments} == {f"analyst{i}" for i in range(writers)}


def _commenter(url: str, case_id: str, go: mp.synchronize.Event, actor: str) -> None:
    go.wait(JOIN_TIMEOUT)
    with Store.open(url) as store:
        for k in range(10):
            store.comment(case_id, f"{actor} note {k}", actor)


def _opener(url: str, go: mp.synchronize.Event) -> None:
    go.wait(JOIN_TIMEOUT)
    Store.open(url).dispose()


def test_store_first_open_from_several_processes_migrates_once(store_url):
    """Processes racing to create the schema of an empty database all succeed (migrations serialised)."""
    go = CTX.Event()
    procs = [CTX.Process(target=_opener, args=(store_url, go)) for _ in range(3)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(JOIN_TIMEOUT)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    with Store.open(store_url) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1


def test_store_two_detection_processes_overlapping_alerts_no_duplicates(store_url, make_alerts):
    """Two detection runs writing mostly the same alerts at once: each alert stored once, both runs complete."""
    with Store.open(store_url) as store:
        store.record_run(make_alerts(1), data_source="seed", config_hash="h")
    go = CTX.Event()
    procs = [CTX.Process(target=_detector, args=(store_url, make_alerts, go, 3)) for _ in range(2)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join(JOIN_TIMEOUT)
    assert [p.exitcode for p in procs] == [0, 0]
    with Store.open(store_url) as store:
        assert store.alert_count() == 1 + 300 + 200 * 2
        assert [r.status for r in store.runs()] == ["complete"] * 7
