"""Shared state of one simulation: universe, price paths, accounts, the event tape and labels.

The simulator builds a :class:`SimContext`, lets each scenario injector shift prices and append its
own orders/trades (tagged with its ``scenario_id``), then generates the background flow on the final
price paths and writes everything through :meth:`SimContext.to_tables`.

Ids are integers while building (cheap to reference) and become prefixed strings at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from market_surveillance.enums import LiquidityTier, OrderEvent, Segment, Side, Typology
from market_surveillance.schema import conform

US = 1_000_000  # microseconds per second

EVENT_CODE = {OrderEvent.NEW: 0, OrderEvent.CANCEL: 1, OrderEvent.FILL: 2}
EVENT_NAME = np.array([OrderEvent.NEW.value, OrderEvent.CANCEL.value, OrderEvent.FILL.value], dtype=object)
SIDE_CODE = {Side.BUY: 0, Side.SELL: 1}
SIDE_NAME = np.array([Side.BUY.value, Side.SELL.value], dtype=object)


@dataclass(frozen=True)
class AssetSpec:
    asset: str
    start_price: float
    daily_vol: float  # fractional daily volatility of the fair value
    float_qty: float  # free float in base units
    typical_qty: float  # median background trade size, base units
    thin: bool = False  # low-float, low-liquidity token (pump & dump target)
    weight: float = 1.0  # share of background activity
    tier: str = ""  # LiquidityTier value; "" = inferred (see Universe.tier_of)
    # multiplies background ticket sizes and scenario USD knobs: a thin token's tickets are smaller
    notional_scale: float = 1.0
    # fixed background trades per minute (all venues); None = its ``weight`` share of the day's trades
    trades_per_min: float | None = None


@dataclass
class Universe:
    venues: tuple[str, ...]
    assets: tuple[AssetSpec, ...]
    start_us: int  # epoch microseconds
    end_us: int
    grid_s: int = 1  # resolution of price paths, seconds
    # benchmark fixings as UTC times of day "HH:MM": the daily candle close by default; a venue may add its
    # perpetual funding snapshots (08:00, 16:00) or an index fixing
    fixing_times: tuple[str, ...] = ("00:00",)

    @property
    def n_grid(self) -> int:
        return (self.end_us - self.start_us) // (self.grid_s * US) + 1

    def asset(self, name: str) -> AssetSpec:
        for a in self.assets:
            if a.asset == name:
                return a
        raise KeyError(name)

    @property
    def thin_assets(self) -> list[AssetSpec]:
        return [a for a in self.assets if a.thin]

    def tier_of(self, name: str) -> str:
        """The asset's liquidity tier (declared, else small_cap for a thin token and large_cap otherwise)."""
        a = self.asset(name)
        if a.tier:
            return a.tier
        return LiquidityTier.SMALL_CAP.value if a.thin else LiquidityTier.LARGE_CAP.value

    def fixings_us(self) -> list[int]:
        """Every fixing instant in ``(start_us, end_us]`` (a fixing at the day's end is its daily close)."""
        day_us = 86_400 * US
        out = []
        for hhmm in self.fixing_times:
            h, m = (int(x) for x in hhmm.split(":"))
            t = self.start_us - self.start_us % day_us + (h * 3600 + m * 60) * US
            while t <= self.end_us:
                if t > self.start_us:
                    out.append(t)
                t += day_us
        return sorted(out)


class PricePaths:
    """Fair value per asset plus per-venue noise on a regular grid; scenarios may shift a venue's path."""

    def __init__(self, universe: Universe, rng: np.random.Generator, venue_noise_bps: float = 4.0):
        self.u = universe
        n = universe.n_grid
        self.paths: dict[tuple[str, str], np.ndarray] = {}
        self.fair: dict[str, np.ndarray] = {}
        step_frac = universe.grid_s / 86_400
        for a in universe.assets:
            shocks = rng.standard_normal(n) * a.daily_vol * np.sqrt(step_frac)
            fair = a.start_price * np.exp(
                np.cumsum(shocks) - 0.5 * (a.daily_vol**2) * step_frac * np.arange(n)
            )
            self.fair[a.asset] = fair
            for v in universe.venues:
                # mean-reverting venue basis: AR(1) with a few minutes half-life
                phi = 0.995
                eps = rng.standard_normal(n) * venue_noise_bps * 1e-4 * np.sqrt(1 - phi**2)
                basis = _ar1(eps, phi)
                self.paths[(a.asset, v)] = fair * (1 + basis)

    def index(self, ts_us: np.ndarray | int) -> np.ndarray:
        i = (np.asarray(ts_us) - self.u.start_us) // (self.u.grid_s * US)
        return np.clip(i, 0, self.u.n_grid - 1)

    def price(self, asset: str, venue: str, ts_us: np.ndarray | int) -> np.ndarray:
        return self.paths[(asset, venue)][self.index(ts_us)]

    def shift(self, asset: str, venue: str | None, start_us: int, factors: np.ndarray) -> None:
        """Multiply the path(s) from ``start_us`` on by ``factors`` (one per grid step; last value persists
        only over the given span). ``venue=None`` shifts every venue (a market-wide move)."""
        i0 = int(self.index(start_us))
        i1 = min(i0 + len(factors), self.u.n_grid)
        venues = self.u.venues if venue is None else (venue,)
        for v in venues:
            self.paths[(asset, v)][i0:i1] *= factors[: i1 - i0]
        if venue is None:
            self.fair[asset][i0:i1] *= factors[: i1 - i0]


def _ar1(eps: np.ndarray, phi: float) -> np.ndarray:
    from scipy.signal import lfilter

    return lfilter([1.0], [1.0, -phi], eps)


@dataclass
class Accounts:
    """Account reference data and network fingerprints built during a simulation."""

    ids: list[str] = field(default_factory=list)
    segments: list[str] = field(default_factory=list)
    baselines: list[float] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    net_account: list[str] = field(default_factory=list)
    net_device: list[str] = field(default_factory=list)
    net_subnet: list[str] = field(default_factory=list)
    _n_dev: int = 0
    _n_sub: int = 0

    def add(
        self,
        segment: Segment,
        baseline_hourly_notional: float,
        *,
        device_id: str | None = None,
        ip_subnet: str | None = None,
        prefix: str = "A",
        owner_id: str | None = None,
    ) -> str:
        """Create an account (with its own device and subnet unless shared ones are given, and its own
        beneficial owner unless ``owner_id`` names an existing one)."""
        account_id = f"{prefix}{len(self.ids):06d}"
        self.ids.append(account_id)
        self.segments.append(segment.value)
        self.baselines.append(float(baseline_hourly_notional))
        self.owners.append(owner_id or f"OWN{len(self.ids) - 1:06d}")
        self.net_account.append(account_id)
        self.net_device.append(device_id or self.new_device())
        self.net_subnet.append(ip_subnet or self.new_subnet())
        return account_id

    def new_device(self) -> str:
        self._n_dev += 1
        return f"dev-{self._n_dev:06x}"

    def new_subnet(self) -> str:
        self._n_sub += 1
        n = self._n_sub
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}/32".replace("/32", ".0/24")

    def link(self, account_id: str, *, device_id: str | None = None, ip_subnet: str | None = None) -> None:
        """Record one more device/subnet seen for an account."""
        self.net_account.append(account_id)
        self.net_device.append(device_id or self.new_device())
        self.net_subnet.append(ip_subnet or self.new_subnet())

    def segment_of(self, account_id: str) -> str:
        return self.segments[self.ids.index(account_id)]

    def owner_of(self, account_id: str) -> str:
        return self.owners[self.ids.index(account_id)]

    def set_owner(self, account_id: str, owner_id: str) -> None:
        self.owners[self.ids.index(account_id)] = owner_id


class Tape:
    """Columnar builder of order events and trades that keeps them consistent.

    Scenario code calls the scalar helpers (few rows); the background generator appends whole numpy
    chunks with :meth:`extend_orders` / :meth:`extend_trades`. Order ids are integers until
    :meth:`to_tables`.
    """

    ORDER_COLS = ("ts_us", "venue", "asset", "account", "order", "event", "side", "price", "qty", "scenario")
    TRADE_COLS = (
        "ts_us",
        "venue",
        "asset",
        "price",
        "qty",
        "buyer",
        "seller",
        "aggressor",
        "buy_order",
        "sell_order",
        "scenario",
    )

    def __init__(self) -> None:
        self._orders: list[dict[str, np.ndarray]] = []
        self._trades: list[dict[str, np.ndarray]] = []
        self._o_rows: dict[str, list] = {c: [] for c in self.ORDER_COLS}
        self._t_rows: dict[str, list] = {c: [] for c in self.TRADE_COLS}
        self.next_order = 0
        self.order_info: dict[int, tuple[str, str, str, int, float, float]] = {}  # scalar orders only

    # -- id allocation ------------------------------------------------------------------------
    def alloc_orders(self, n: int) -> np.ndarray:
        ids = np.arange(self.next_order, self.next_order + n, dtype=np.int64)
        self.next_order += n
        return ids

    # -- scalar helpers for scenarios -----------------------------------------------------------
    def new(
        self,
        ts_us: int,
        venue: str,
        asset: str,
        account: str,
        side: Side,
        price: float,
        qty: float,
        scenario: str | None = None,
    ) -> int:
        oid = int(self.alloc_orders(1)[0])
        self._o_row(ts_us, venue, asset, account, oid, 0, SIDE_CODE[Side(side)], price, qty, scenario)
        self.order_info[oid] = (venue, asset, account, SIDE_CODE[Side(side)], price, qty)
        return oid

    def cancel(
        self, ts_us: int, order: int, remaining_qty: float | None = None, scenario: str | None = None
    ) -> None:
        venue, asset, account, side, price, qty = self.order_info[order]
        rem = qty if remaining_qty is None else remaining_qty
        self._o_row(ts_us, venue, asset, account, order, 1, side, price, rem, scenario)

    def trade(
        self,
        ts_us: int,
        buy_order: int,
        sell_order: int,
        qty: float,
        price: float | None = None,
        aggressor: Side = Side.BUY,
        scenario: str | None = None,
    ) -> None:
        """A trade between two scalar orders, with a fill event for each side (price defaults to the
        resting order's limit price)."""
        bv, ba, bacc, _, bprice, _ = self.order_info[buy_order]
        sv, sa, sacc, _, sprice, _ = self.order_info[sell_order]
        if (bv, ba) != (sv, sa):
            raise ValueError("a trade's two orders must be on one venue and asset")
        if price is None:
            price = sprice if Side(aggressor) is Side.BUY else bprice
        self._o_row(ts_us, bv, ba, bacc, buy_order, 2, 0, bprice, qty, scenario)
        self._o_row(ts_us, sv, sa, sacc, sell_order, 2, 1, sprice, qty, scenario)
        for c, v in zip(
            self.TRADE_COLS,
            (
                ts_us,
                bv,
                ba,
                price,
                qty,
                bacc,
                sacc,
                SIDE_CODE[Side(aggressor)],
                buy_order,
                sell_order,
                scenario,
            ),
            strict=True,
        ):
            self._t_rows[c].append(v)

    def cross(
        self,
        ts_us: int,
        venue: str,
        asset: str,
        resting_account: str,
        aggressor_account: str,
        aggressor: Side,
        price: float,
        qty: float,
        scenario: str | None = None,
        resting_delay_us: int = 200_000,
    ) -> tuple[int, int]:
        """A complete trade: the resting party posts a limit order shortly before, the aggressor sends a
        marketable order; both are fully filled. Returns ``(resting_order, aggressor_order)``."""
        aggressor = Side(aggressor)
        rest_side = Side.SELL if aggressor is Side.BUY else Side.BUY
        rest = self.new(
            ts_us - resting_delay_us, venue, asset, resting_account, rest_side, price, qty, scenario
        )
        aggr = self.new(ts_us, venue, asset, aggressor_account, aggressor, price, qty, scenario)
        buy, sell = (aggr, rest) if aggressor is Side.BUY else (rest, aggr)
        self.trade(ts_us, buy, sell, qty, price, aggressor, scenario)
        return rest, aggr

    def _o_row(self, ts_us, venue, asset, account, order, event, side, price, qty, scenario) -> None:  # type: ignore[no-untyped-def]
        for c, v in zip(
            self.ORDER_COLS,
            (ts_us, venue, asset, account, order, event, side, price, qty, scenario),
            strict=True,
        ):
            self._o_rows[c].append(v)

    # -- bulk helpers for the background generator -------------------------------------------
    def extend_orders(self, chunk: dict[str, np.ndarray]) -> None:
        """Append order events column-wise (keys = :attr:`ORDER_COLS`; event/side as int codes)."""
        self._orders.append(chunk)

    def extend_trades(self, chunk: dict[str, np.ndarray]) -> None:
        """Append trades column-wise (keys = :attr:`TRADE_COLS`; aggressor as int code)."""
        self._trades.append(chunk)

    # -- output ---------------------------------------------------------------------------------
    def _collect(self, chunks: list[dict[str, np.ndarray]], rows: dict[str, list], cols: tuple[str, ...]):  # type: ignore[no-untyped-def]
        parts = list(chunks)
        if rows[cols[0]]:
            parts.append({c: np.asarray(rows[c], dtype=object if c in _OBJ else None) for c in cols})
        if not parts:
            return {c: np.array([], dtype=object if c in _OBJ else np.float64) for c in cols}
        return {
            c: np.concatenate([np.asarray(p[c], dtype=object if c in _OBJ else None) for p in parts])
            for c in cols
        }

    def to_tables(self) -> tuple[pa.Table, pa.Table]:
        """Canonical ``(trades, orders)``, each sorted by time with sequential string ids."""
        o = self._collect(self._orders, self._o_rows, self.ORDER_COLS)
        t = self._collect(self._trades, self._t_rows, self.TRADE_COLS)
        # stable time order; at equal ts a new precedes its fill/cancel (event codes 0 < 1, 2)
        oi = np.lexsort((o["event"].astype(np.int64), o["ts_us"].astype(np.int64)))
        ti = np.argsort(t["ts_us"].astype(np.int64), kind="stable")
        o = {c: v[oi] for c, v in o.items()}
        t = {c: v[ti] for c, v in t.items()}
        orders = conform(
            "orders",
            {
                "event_id": _ids("E", len(oi)),
                "ts": _ts(o["ts_us"]),
                "venue": pa.array(o["venue"], pa.string()),
                "asset": pa.array(o["asset"], pa.string()),
                "account_id": pa.array(o["account"], pa.string()),
                "order_id": _fmt_ids("O", o["order"]),
                "event": pa.array(EVENT_NAME[o["event"].astype(np.int64)], pa.string()),
                "side": pa.array(SIDE_NAME[o["side"].astype(np.int64)], pa.string()),
                "price": pa.array(o["price"].astype(np.float64)),
                "qty": pa.array(o["qty"].astype(np.float64)),
                "scenario_id": pa.array(o["scenario"], pa.string()),
            },
        )
        trades = conform(
            "trades",
            {
                "trade_id": _ids("T", len(ti)),
                "ts": _ts(t["ts_us"]),
                "venue": pa.array(t["venue"], pa.string()),
                "asset": pa.array(t["asset"], pa.string()),
                "price": pa.array(t["price"].astype(np.float64)),
                "qty": pa.array(t["qty"].astype(np.float64)),
                "buyer_id": pa.array(t["buyer"], pa.string()),
                "seller_id": pa.array(t["seller"], pa.string()),
                "aggressor": pa.array(SIDE_NAME[t["aggressor"].astype(np.int64)], pa.string()),
                "buy_order_id": _fmt_ids("O", t["buy_order"]),
                "sell_order_id": _fmt_ids("O", t["sell_order"]),
                "scenario_id": pa.array(t["scenario"], pa.string()),
            },
        )
        return trades, orders


_OBJ = {"venue", "asset", "account", "buyer", "seller", "scenario"}


def _ts(ts_us: np.ndarray) -> pa.Array:
    return pa.array(ts_us.astype(np.int64), pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def _fmt_ids(prefix: str, ints: np.ndarray) -> pa.Array:
    import pyarrow.compute as pc

    arr = pa.array(ints.astype(np.int64)).cast(pa.string())
    return pc.binary_join_element_wise(pa.scalar(prefix), pc.utf8_lpad(arr, 9, "0"), "")


def _ids(prefix: str, n: int) -> pa.Array:
    return _fmt_ids(prefix, np.arange(n, dtype=np.int64))


@dataclass
class Labels:
    """Ground truth rows written by scenario injectors."""

    rows: list[dict] = field(default_factory=list)

    def add(
        self,
        typology: Typology,
        asset: str,
        venue: str | None,
        accounts: list[str],
        start_us: int,
        end_us: int,
        variant: str | None = None,
        tier: str | None = None,
    ) -> str:
        scenario_id = f"S{len(self.rows):04d}-{typology.value}"
        self.rows.append(
            {
                "scenario_id": scenario_id,
                "typology": typology.value,
                "asset": asset,
                "venue": venue,
                "accounts": sorted(accounts),
                "start_ts": start_us,
                "end_ts": end_us,
                "variant": variant,
                "tier": tier,
            }
        )
        return scenario_id

    def to_table(self) -> pa.Table:
        keys = ("scenario_id", "typology", "asset", "venue", "accounts", "variant", "tier")
        cols = {k: [r.get(k) for r in self.rows] for k in keys}
        return conform(
            "labels",
            {
                **{
                    k: pa.array(v, pa.list_(pa.string()) if k == "accounts" else pa.string())
                    for k, v in cols.items()
                },
                "start_ts": _ts(np.array([r["start_ts"] for r in self.rows], dtype=np.int64)),
                "end_ts": _ts(np.array([r["end_ts"] for r in self.rows], dtype=np.int64)),
            },
        )


def component_rng(seed_seq: np.random.SeedSequence, component: str) -> np.random.Generator:
    """A generator for one named component, derived from the master seed and the component's name."""
    import hashlib

    digest = hashlib.sha256(component.encode()).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng([*seed_seq.generate_state(2), *words])


@dataclass
class SimContext:
    """Everything a scenario injector may read or append to."""

    universe: Universe
    prices: PricePaths
    accounts: Accounts
    tape: Tape
    labels: Labels
    seed_seq: np.random.SeedSequence
    crowd: dict[str, list[str]] = field(default_factory=dict)  # segment -> background account ids
    # intervals (asset, start_us, end_us) scenarios reserve so injections do not overlap one another
    reserved: list[tuple[str, int, int]] = field(default_factory=list)
    # (account_id, asset) -> base units held before the simulated period (positions = opening + trades)
    opening_positions: dict[tuple[str, str], float] = field(default_factory=dict)
    # (asset, venue) -> market makers quoting that book; scenarios hand large tickets to these
    makers: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def rng(self, component: str) -> np.random.Generator:
        """An RNG of its own for one named component (ABIDES style: master seed → one RNG each)."""
        return component_rng(self.seed_seq, component)

    def price(self, asset: str, venue: str, ts_us: int) -> float:
        return float(self.prices.price(asset, venue, ts_us))

    def crowd_account(self, rng: np.random.Generator, segment: Segment = Segment.RETAIL) -> str:
        """A random background account to act as an innocent counterparty."""
        pool = self.crowd[segment.value]
        return pool[int(rng.integers(len(pool)))]

    def free_slot(
        self, rng: np.random.Generator, asset: str, duration_us: int, margin_us: int = 30 * 60 * US
    ) -> int:
        """A start time for an injection on ``asset`` that does not overlap earlier reservations (with margin)."""
        u = self.universe
        lo = u.start_us + 13 * 3600 * US if u.end_us - u.start_us > 20 * 3600 * US else u.start_us + margin_us
        hi = u.end_us - duration_us - margin_us
        if hi <= lo:
            raise ValueError("simulation too short for this scenario")
        for _ in range(200):
            s = int(rng.integers(lo, hi))
            if all(
                a != asset or s + duration_us + margin_us < rs or s > re + margin_us
                for a, rs, re in self.reserved
            ):
                self.reserved.append((asset, s, s + duration_us))
                return s
        raise ValueError(f"no free slot left on {asset} for a {duration_us / US:.0f}s scenario")
