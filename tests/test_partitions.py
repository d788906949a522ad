"""Date-partitioned canonical tables (`trades/date=YYYY-MM-DD/*.parquet`) and `detect --since/--until`."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from market_surveillance.pipeline import detect_source
from market_surveillance.schema import InputError, date_window, partition_files
from market_surveillance.testing import public_book_flow, trades

DAYS = ("2024-03-01", "2024-03-02", "2024-03-03")


def _dataset(root: Path) -> Path:
    _, tr = public_book_flow(seconds=100)  # 50 trades on 2024-03-01
    base = trades(tr)
    for k, day in enumerate(DAYS):
        shifted = pc.add(base["ts"], pa.scalar(dt.timedelta(days=k)))
        tab = base.set_column(base.schema.get_field_index("ts"), "ts", shifted)
        ids = pc.binary_join_element_wise(tab["trade_id"], pa.scalar(day), "@")
        tab = tab.set_column(tab.schema.get_field_index("trade_id"), "trade_id", ids)
        part = root / "trades" / f"date={day}"
        part.mkdir(parents=True)
        pq.write_table(tab, part / "part-0.parquet")
    return root


def test_partitioned_dataset_read_whole_without_window(tmp_path):
    res = detect_source(_dataset(tmp_path))
    assert res.input_counts["trades"]["rows_in"] == 150


def test_partition_pruning_never_opens_other_days(tmp_path):
    root = _dataset(tmp_path)
    # a corrupt file in a day outside the window would fail the run if it were opened
    (root / "trades" / "date=2024-03-01" / "part-0.parquet").write_bytes(b"not parquet")
    res = detect_source(root, since=dt.date(2024, 3, 2), until=dt.date(2024, 3, 2))
    assert res.input_counts["trades"]["rows_in"] == 50
    with pytest.raises(Exception):  # noqa: B017 - the corrupt day is read when the window includes it
        detect_source(root, since=dt.date(2024, 3, 1), until=dt.date(2024, 3, 1))


def test_partition_files_window_bounds_inclusive(tmp_path):
    folder = _dataset(tmp_path) / "trades"
    with date_window(dt.date(2024, 3, 2), None):
        assert [p.parent.name for p in partition_files(folder)] == ["date=2024-03-02", "date=2024-03-03"]
    with date_window(None, dt.date(2024, 3, 1)):
        assert [p.parent.name for p in partition_files(folder)] == ["date=2024-03-01"]
    with (
        pytest.raises(InputError, match="after --until"),
        date_window(dt.date(2024, 3, 3), dt.date(2024, 3, 1)),
    ):
        pass


def test_partition_window_without_data_gives_empty_input_error(tmp_path):
    root = _dataset(tmp_path)
    with pytest.raises(InputError):
        detect_source(root, since=dt.date(2025, 1, 1))


def test_cli_detect_since_until(tmp_path):
    from market_surveillance.cli import app

    root = _dataset(tmp_path / "d")
    out = tmp_path / "alerts.parquet"
    args = [
        "detect",
        "--data",
        str(root),
        "--out",
        str(out),
        "--since",
        "2024-03-02",
        "--until",
        "2024-03-03",
    ]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "100" in res.output  # rows read from the two days
    bad = CliRunner().invoke(app, ["detect", "--data", str(root), "--since", "March"])
    assert bad.exit_code == 2 and "--since must be a date YYYY-MM-DD" in bad.output
