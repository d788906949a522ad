"""The online step under Spark Structured Streaming: ``foreachBatch`` with the same Ibis rule expressions.

Each Spark micro-batch (any streaming source: files landing on object storage, Kafka decoded to the
canonical columns) is appended to a trailing buffer DataFrame cut at the longest rule horizon; every rule
then runs on it through Ibis' PySpark backend (the same expressions as ``detect --engine spark``) and
:meth:`market_surveillance.online.OnlineState.reconcile` decides what is new and what continues, exactly as
in ``watch``. The decided alerts go to ``sink`` (e.g. the store's ``record_batch`` with the watermark).

Spark's own checkpoint makes the source replayable; the alert state is rebuilt from the sink on restart
(``OnlineState.restore``), as ``watch`` does from the store. See docs/scaling.md for what was tested.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ibis
import pyarrow as pa

from market_surveillance.alerts import ALERT_SCHEMA
from market_surveillance.online import NORMS_S, US, OnlineState
from market_surveillance.rules import intermediates
from market_surveillance.rules.base import Rule

Sink = Callable[[list[dict[str, Any]], int], None]


class SparkOnline:
    """A ``foreachBatch`` function holding the trailing buffer and the online state between batches.

    ``table`` is the canonical table the stream carries (``trades`` or ``orders``; one stream per table,
    ``static`` holds the other canonical tables as Spark DataFrames). Use as
    ``stream.writeStream.foreachBatch(SparkOnline(...)).start()``.
    """

    def __init__(
        self,
        session: Any,
        rules: Sequence[Rule],
        sink: Sink,
        *,
        table: str = "trades",
        step: float = 5.0,
        static: Mapping[str, Any] | None = None,
        state: OnlineState | None = None,
    ):
        self.session = session
        self.backend = ibis.pyspark.connect(session)
        self.table = table
        self.sink = sink
        self.state = state or OnlineState(list(rules), int(step * US))
        self.buffer: Any = None
        self.static = dict(static or {})
        # foreachBatch hands each batch in a session of its own: session temp views would not be seen from
        # ours, global ones (database global_temp) are shared by every session of the application
        for name, df in self.static.items():
            df.createOrReplaceGlobalTempView(f"ms_online_{name}")

    def _view(self, name: str) -> Any:
        # ibis cannot address global_temp directly: re-expose the global view in our session
        view = f"ms_online_{name}"
        self.session.table(f"global_temp.{view}").createOrReplaceTempView(view)
        return self.backend.table(view)

    def __call__(self, batch_df: Any, batch_id: int) -> None:
        from pyspark.sql import functions as sf

        df = batch_df.withColumn("ts_us", sf.unix_micros(sf.col("ts")))
        mx = df.agg(sf.max("ts_us")).collect()[0][0]
        if mx is None:
            return
        prev = self.state.watermark
        now = max(int(mx), prev or 0)
        start = (
            prev if prev is not None else int(df.agg(sf.min("ts_us")).collect()[0][0]) - self.state.step_us
        )
        span = now - start
        buf = df if self.buffer is None else self.buffer.unionByName(df)
        # the buffer's lineage would grow with every batch: materialise it (executor memory, no disk)
        keep = max(self.state.max_horizon_us(span), NORMS_S * US)
        buf = buf.filter(sf.col("ts_us") > now - keep).localCheckpoint()
        self.buffer = buf
        buf.createOrReplaceGlobalTempView(f"ms_online_{self.table}")
        base = self._view(self.table)
        changed: list[dict[str, Any]] = []
        # per-asset norms over the trailing day, once per batch for every rule (as watch does)
        whole = {self.table: base.filter(base.ts_us > now - NORMS_S * US)}
        whole.update({n: self._view(n) for n in self.static})
        norms = intermediates.materialize(whole, intermediates.needed(self.state.rules, whole))
        try:
            for rule in self.state.rules:
                if not rule.online_due(start, now):
                    continue  # e.g. no fixing in this batch for MS018
                cut = now - self.state.horizon_us(rule, span)
                tables = {self.table: base.filter(base.ts_us > cut)}
                tables.update({n: self._view(n) for n in self.static})
                alerts = rule.run({**tables, **norms})
                changed.extend(self.state.reconcile(rule, alerts, now, span))
        finally:
            intermediates.release(norms)
        self.state.watermark = now
        self.sink(changed, now)


def alerts_of(rows: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The decided alerts a sink received, latest version of each id, in :data:`ALERT_SCHEMA`."""
    last: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        last[r["alert_id"]] = r
    if not last:
        return ALERT_SCHEMA.empty_table()
    return pa.Table.from_pylist([dict(r) for r in last.values()], schema=ALERT_SCHEMA)
