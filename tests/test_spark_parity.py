"""The same rule code on DuckDB and on local PySpark gives identical alert sets (issue 8).

Every registered rule runs on both engines over two datasets: the hand-made mini dataset and the simulator's
``scale="small"`` day with every scenario injected. Each dataset is loaded once per engine (module fixtures);
the Spark session is local[2] with 2 shuffle partitions so the suite stays quick on a 2-core CI runner.
"""

from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pytest

from market_surveillance.io.canonical import from_arrow
from market_surveillance.rules.base import Rule, Tables
from market_surveillance.rules.registry import all_rules
from market_surveillance.testing import mini_dataset

pytestmark = pytest.mark.spark

RULES = all_rules()


@pytest.fixture(scope="module")
def spark():
    if os.environ.get("CI"):
        import pyspark  # noqa: F401  (CI installs the spark extra: a missing pyspark must fail there)
    else:
        pytest.importorskip("pyspark", reason="optional extra: pip install market-surveillance[spark]")
    if shutil.which("java") is None:
        pytest.fail("PySpark parity needs Java (17) on PATH")
    from market_surveillance.io.canonical import spark_backend

    # few shuffle partitions: the test data is small, and 200 (Spark's default) or 8 tasks per shuffle
    # stage dominate the run time on 2 cores
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MS_SPARK_SHUFFLE_PARTITIONS", "2")
        backend = spark_backend("local[2]")
    backend._session.conf.set("spark.sql.shuffle.partitions", "2")
    return backend


def _both(spark, data: dict[str, pa.Table]) -> tuple[Tables, Tables]:
    """The data on DuckDB and on its own Spark session (temp views are per session: datasets stay apart)."""
    import ibis

    _, duck, _ = from_arrow(data)
    isolated = ibis.pyspark.connect(spark._session.newSession())
    _, spk, _ = from_arrow(data, backend=isolated)
    return duck, spk


def _comparable(t: pa.Table) -> list[dict]:
    rows = t.drop_columns(["score"]).to_pylist()
    for r, s in zip(rows, t["score"].to_pylist(), strict=True):
        r["score"] = round(s, 6)
    return sorted(rows, key=lambda r: r["alert_id"])


@pytest.fixture(scope="module")
def mini_tables(spark) -> tuple[Tables, Tables]:
    return _both(spark, mini_dataset())


@pytest.fixture(scope="module")
def small_tables(spark) -> tuple[Tables, Tables]:
    """Synthetic small-scale data with every scenario injected (the demo's data)."""
    from market_surveillance.simulate import simulate

    return _both(spark, simulate(seed=3, scale="small"))


@pytest.mark.parametrize("cls", RULES, ids=[c.name for c in RULES])
def test_rule_parity_duckdb_spark_mini(mini_tables, cls: type[Rule]):
    duck, spk = mini_tables
    assert _comparable(cls().run(duck)) == _comparable(cls().run(spk))


@pytest.mark.parametrize("cls", RULES, ids=[c.name for c in RULES])
def test_rule_parity_duckdb_spark_small_scale(small_tables, cls: type[Rule]):
    duck, spk = small_tables
    a, b = cls().run(duck), cls().run(spk)
    assert _comparable(a) == _comparable(b)
