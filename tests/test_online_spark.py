"""The online step under Spark Structured Streaming (foreachBatch) decides the same alerts as `watch`."""

from __future__ import annotations

import os
import shutil

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from market_surveillance.online import watch
from market_surveillance.rules.config import build_rules
from market_surveillance.simulate import simulate

pytestmark = pytest.mark.spark

KEEP = {"MS016", "MS040"}


def test_spark_foreach_batch_stream_same_alerts_as_watch(tmp_path):
    if os.environ.get("CI"):
        import pyspark  # noqa: F401
    else:
        pytest.importorskip("pyspark", reason="optional extra: pip install market-surveillance[spark]")
    if shutil.which("java") is None:
        pytest.fail("the Spark streaming test needs Java (17) on PATH")
    import datetime as dt

    from market_surveillance.io.canonical import spark_backend
    from market_surveillance.online_spark import SparkOnline, alerts_of
    from market_surveillance.schema import conform

    trades = conform("trades", simulate(7, scale="small")["trades"])
    ref_dir, parts = tmp_path / "ref", tmp_path / "parts"
    ref_dir.mkdir()
    parts.mkdir()
    pq.write_table(trades, ref_dir / "trades.parquet")
    t0 = pc.min(trades["ts"]).as_py()
    cuts = [t0 + dt.timedelta(hours=h) for h in (0, 8, 16, 48)]
    for i in range(3):
        m = pc.and_(pc.greater_equal(trades["ts"], cuts[i]), pc.less(trades["ts"], cuts[i + 1]))
        pq.write_table(trades.filter(m), parts / f"trades-{i}.parquet")

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MS_SPARK_SHUFFLE_PARTITIONS", "2")
        session = spark_backend("local[2]")._session
    received: list[dict] = []
    fn = SparkOnline(
        session, [r for r in build_rules() if r.rule_id in KEEP], lambda rows, wm: received.extend(rows)
    )
    schema = session.read.parquet(str(parts / "trades-0.parquet")).schema
    stream = session.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(parts))
    q = (
        stream.writeStream.foreachBatch(fn)
        .option("checkpointLocation", str(tmp_path / "ckpt"))
        .trigger(availableNow=True)
        .start()
    )
    q.awaitTermination()
    # the session is shared with the parity tests that follow: free the checkpointed buffer and the views
    fn.buffer.unpersist()
    for name in ("trades", *fn.static):
        session.catalog.dropGlobalTempView(f"ms_online_{name}")
        session.catalog.dropTempView(f"ms_online_{name}")
    got = alerts_of(received).to_pylist()
    ref = watch(ref_dir, [r for r in build_rules() if r.rule_id in KEEP]).alert_table().to_pylist()

    def key(r: dict) -> tuple:
        return (r["alert_id"], r["window_start"], r["window_end"], r["detected_at"])

    assert fn.state.watermark is not None and len(ref) > 0
    assert sorted(map(key, got)) == sorted(map(key, ref))
