"""Closed sets used across the package (one place, like NautilusTrader's enums)."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderEvent(StrEnum):
    NEW = "new"
    CANCEL = "cancel"
    FILL = "fill"


class Segment(StrEnum):
    RETAIL = "retail"
    INSTITUTIONAL = "institutional"
    MARKET_MAKER = "market_maker"
    PROPRIETARY = "proprietary"
    HIGH_FREQUENCY = "high_frequency"


class CaseStatus(StrEnum):
    OPEN = "open"
    INVESTIGATING = "investigating"
    ESCALATED = "escalated"
    CLOSED_FALSE_POSITIVE = "closed_false_positive"
    CLOSED_REPORTED = "closed_reported"


class CasePriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class Typology(StrEnum):
    """Manipulation typologies; each injected scenario carries exactly one."""

    WASH_TRADING = "wash_trading"
    PING_PONG = "ping_pong"
    PUMP_AND_DUMP = "pump_and_dump"
    SPOOFING = "spoofing"
    LAYERING = "layering"
    FRONT_RUNNING = "front_running"
    MESSAGE_FLOOD = "message_flood"
    CANCEL_TO_FILL = "cancel_to_fill"
    ACCOUNT_DEVIATION = "account_deviation"
    CROSS_VENUE_DISLOCATION = "cross_venue_dislocation"
    COLLUSION_RING = "collusion_ring"
    POSITION_CONCENTRATION = "position_concentration"
    VOLUME_SPIKE = "volume_spike"
    BEHAVIOURAL_ANOMALY = "behavioural_anomaly"
    MARKING_THE_CLOSE = "marking_the_close"


class LiquidityTier(StrEnum):
    """Liquidity tier of an instrument, from BTC-like to a thin micro-cap token (simulator and labels)."""

    MAJOR = "major"
    LARGE_CAP = "large_cap"
    MID_CAP = "mid_cap"
    SMALL_CAP = "small_cap"
    MICRO_CAP = "micro_cap"


class Verdict(StrEnum):
    """An analyst's verdict on one alert, recorded when the case holding it is closed."""

    TRUE_POSITIVE = "true_positive"
    FALSE_POSITIVE = "false_positive"


class VerdictReason(StrEnum):
    """Why an alert got its verdict (closed set so that false-positive causes can be counted per rule)."""

    # true positives
    STOR_FILED = "stor_filed"  # reported to the competent authority
    CONFIRMED_INTERNAL = "confirmed_internal"  # abusive, handled internally (account action, warning)
    # false positives
    LEGITIMATE_MARKET_MAKING = "legitimate_market_making"
    HEDGING_OR_ARBITRAGE = "hedging_or_arbitrage"
    KNOWN_BENIGN_PATTERN = "known_benign_pattern"
    DATA_QUALITY = "data_quality"
    THRESHOLD_TOO_SENSITIVE = "threshold_too_sensitive"
    DUPLICATE_ALERT = "duplicate_alert"
    OTHER = "other"
