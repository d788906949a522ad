"""The rule contract: declared params, candidates expression, execution (alerts: :mod:`market_surveillance.alerts`).

A rule is a class with a stable ``rule_id``, a slug ``name``, the ``typology`` it targets, a frozen
params dataclass and a :meth:`Rule.candidates` method that turns canonical Ibis tables into one row
per episode. The base class validates params, applies per-asset overrides, executes the expression on
whatever backend the tables live on (DuckDB or PySpark) and finalises the rows into :data:`ALERT_SCHEMA`.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from market_surveillance.alerts import CANDIDATE_COLUMNS, finalize_alerts
from market_surveillance.enums import Typology
from market_surveillance.schema import DataProfile

Tables = Mapping[str, ir.Table]

# ---------------------------------------------------------------------------------------------
# Declared, validated parameters (scikit-learn style)
# ---------------------------------------------------------------------------------------------


def param(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    closed: str = "both",
    choices: tuple[Any, ...] | None = None,
    doc: str = "",
) -> Any:
    """A params-dataclass field with a declared constraint.

    ``closed`` is one of ``both``, ``left``, ``right``, ``neither`` and applies to ``low``/``high``.
    """
    meta = {"low": low, "high": high, "closed": closed, "choices": choices, "doc": doc}
    return field(default=default, metadata=meta)


def _describe(meta: Mapping[str, Any], kind: str) -> str:
    if meta.get("choices") is not None:
        return "one of " + ", ".join(repr(c) for c in meta["choices"])
    low, high, closed = meta.get("low"), meta.get("high"), meta.get("closed", "both")
    article = "an" if kind[:1] in "aeiou" else "a"
    if low is None and high is None:
        return f"{article} {kind}"
    lb = "[" if closed in ("both", "left") and low is not None else "("
    rb = "]" if closed in ("both", "right") and high is not None else ")"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{article} {kind} in the range {lb}{lo}, {hi}{rb}"


@dataclass(frozen=True)
class Params:
    """Base for every rule's params dataclass; checks declared constraints on construction."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            meta = f.metadata
            kind = "float" if isinstance(f.default, float) else type(f.default).__name__
            bad = False
            if meta.get("choices") is not None:
                bad = value not in meta["choices"]
            elif isinstance(f.default, bool):
                bad = not isinstance(value, bool)
            elif isinstance(f.default, int | float):
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or (isinstance(f.default, int) and not isinstance(value, int))
                    or (isinstance(value, float) and math.isnan(value))
                ):
                    bad = True
                else:
                    low, high, closed = meta.get("low"), meta.get("high"), meta.get("closed", "both")
                    if low is not None:
                        bad |= value < low if closed in ("both", "left") else value <= low
                    if high is not None:
                        bad |= value > high if closed in ("both", "right") else value >= high
            elif isinstance(f.default, str):
                bad = not isinstance(value, str)
            if bad:
                raise ValueError(
                    f"The {f.name!r} parameter of {type(self).__name__} must be "
                    f"{_describe(meta, kind)}. Got {value!r} instead."
                )

    def replace(self, **changes: Any) -> Params:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no parameter(s) {sorted(unknown)}; "
                f"known: {[f.name for f in dataclasses.fields(self)]}"
            )
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------------------------


class Rule(ABC):
    """Base of every detection rule. Subclasses declare the ClassVars and implement :meth:`candidates`."""

    rule_id: ClassVar[str]
    name: ClassVar[str]
    typology: ClassVar[Typology]
    regulatory_name: ClassVar[str] = ""
    #: further typologies whose scenarios this rule is expected to catch (scorecard recall)
    also_answers: ClassVar[tuple[Typology, ...]] = ()
    metric: ClassVar[str]
    threshold_param: ClassVar[str]
    Params: ClassVar[type[Params]]
    #: where the rule falls short of the robustness acceptance, with the measured figure and why (docs)
    limitations: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ("trades",)
    #: shared intermediates the rule reads (names in :data:`rules.intermediates.INTERMEDIATES`, got with
    #: ``intermediates.get``): a run materialises each one once for all the rules that declare it
    reads: ClassVar[tuple[str, ...]] = ()
    needs_trade_accounts: ClassVar[bool] = False
    needs_order_accounts: ClassVar[bool] = False
    #: event-time history a decision reads before "now", in seconds: the sum of these params (names of
    #: second-valued params) and constants. Online runs keep this much data per rule and no more.
    lookback: ClassVar[tuple[str | int, ...]] = ()
    #: online runs evaluate the rule at most this often in event time (0: every micro-batch)
    online_every_s: ClassVar[int] = 0
    #: bucket sizes (names of second-valued params, or constants) of the activity bars the rule reads with
    #: ``intermediates.activity_bars``: an online runner keeps those bars per bucket instead of the rule
    #: re-aggregating its whole horizon at every micro-batch
    bar_params: ClassVar[tuple[str | int, ...]] = ()

    def __init__(self, params: Params | None = None, asset_params: Mapping[str, Params] | None = None):
        self.params = params if params is not None else self.Params()
        self.asset_params = dict(asset_params or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    # -- to implement ---------------------------------------------------------------------------
    @abstractmethod
    def candidates(self, t: Tables, p: Params) -> ir.Table:
        """One row per episode with :data:`CANDIDATE_COLUMNS` (``accounts`` and evidence as string arrays)."""

    # -- provided -------------------------------------------------------------------------------
    def skip_reason(self, profile: DataProfile) -> str | None:
        """Why this rule cannot run on a dataset, or None if it can."""
        missing = [name for name in self.requires if name not in profile.tables]
        if missing:
            return f"needs table(s) {', '.join(missing)}, absent from the data"
        if self.needs_trade_accounts and not profile.has_trade_accounts:
            return "needs buyer/seller account ids on trades; the data has none"
        if self.needs_order_accounts and not profile.has_order_accounts:
            return "needs account ids on order events; the data has none"
        return None

    def _all_params(self) -> list[Params]:
        return [self.params, *self.asset_params.values()]

    def lookback_s(self) -> float:
        """Seconds of history before a decision that the decision reads (the widest over per-asset params)."""
        return max(
            sum(float(getattr(p, x)) if isinstance(x, str) else float(x) for x in self.lookback)
            for p in self._all_params()
        )

    def bar_sizes(self) -> set[int]:
        """Bucket seconds of the activity bars the rule reads (:attr:`bar_params`, over per-asset params)."""
        return {
            int(getattr(p, x)) if isinstance(x, str) else int(x)
            for p in self._all_params()
            for x in self.bar_params
        }

    def episode_gap_s(self) -> float:
        """Hits closer than this continue one episode (0 when the rule has no episodes)."""
        return max(float(getattr(p, "episode_gap_s", 0)) for p in self._all_params())

    def online_due(self, since_us: int, now_us: int) -> bool:
        """Online: whether a micro-batch closing event time (``since_us``, ``now_us``] can raise or continue
        an alert of this rule. Rules that decide only at known times (a fixing) skip the other batches."""
        return True

    def threshold(self, p: Params) -> float:
        return float(getattr(p, self.threshold_param))

    def expression(self, t: Tables) -> ir.Table:
        """The full alert-candidate expression, with per-asset overrides applied."""
        overridden = list(self.asset_params)
        parts = []
        base_tables = _filter_assets(t, overridden, exclude=True) if overridden else t
        parts.append(self._tagged(base_tables, self.params))
        for asset, p in self.asset_params.items():
            parts.append(self._tagged(_filter_assets(t, [asset], exclude=False), p))
        return parts[0] if len(parts) == 1 else ibis.union(*parts)

    def _tagged(self, t: Tables, p: Params) -> ir.Table:
        c = self.candidates(t, p)
        missing = [col for col in CANDIDATE_COLUMNS if col not in c.columns]
        if missing:
            raise TypeError(f"{type(self).__name__}.candidates must return {missing}")
        cols = {col: c[col] for col in CANDIDATE_COLUMNS}
        if "detected_at" in c.columns:
            cols["detected_at"] = c["detected_at"]
        if "explanation" in c.columns:
            cols["explanation"] = c["explanation"].cast("string")
        else:
            cols["explanation"] = ibis.null().cast("string")
        cols["threshold"] = ibis.literal(self.threshold(p), type="float64")
        return c.select(**cols)

    def run(self, t: Tables) -> pa.Table:
        """Execute on the tables' backend and return alerts in :data:`ALERT_SCHEMA`."""
        raw = self.expression(t).to_pyarrow()
        return finalize_alerts(self, raw)

    def execute(self, t: Tables) -> RuleOutput:
        """Alerts plus the rule's side outputs (e.g. every account's ML score); the base has none."""
        return RuleOutput(self.run(t))


@dataclass
class RuleOutput:
    """What one execution of a rule returns: its alerts and named side outputs (``{"ml_scores": ...}``)."""

    alerts: pa.Table
    side: dict[str, Any] = field(default_factory=dict)


def _filter_assets(t: Tables, assets: list[str], *, exclude: bool) -> dict[str, ir.Table]:
    out: dict[str, ir.Table] = {}
    for name, tab in t.items():
        if "asset" in tab.columns and name not in ("accounts", "network"):
            cond = tab.asset.isin(assets)
            out[name] = tab.filter(~cond if exclude else cond)
        else:
            out[name] = tab
    return out


def str_array(*cols: ir.Value) -> ir.ArrayValue:
    """An array<string> of the given scalar columns (nulls dropped), e.g. the two parties of a trade."""
    arr = ibis.array([c.cast("string") for c in cols])
    return arr.filter(lambda x: x.notnull())
