"""MS035 cancel_to_fill_market — market-level cancels per fill far above the instrument's own norm."""

from __future__ import annotations

from market_surveillance.enums import Typology
from market_surveillance.rules.order_to_trade import _Ratio
from market_surveillance.rules.registry import register


@register
class CancelToFillMarket(_Ratio):
    """Account-free cancel-to-fill surge.

    What it detects
        On one venue and asset: an interval of ``bucket_s`` seconds whose cancels per fill (fills floored at
        1) reach ``ratio_multiple`` times the median ratio of the instrument's intervals, with at least
        ``min_messages`` cancels. Neighbouring hit intervals make one alert. Needs order events, not
        accounts; it skips data with account ids (MS010 names the account there).
    Why it is abusive
        Orders that are mostly cancelled never intended to trade: they signal liquidity that is not there
        (spoofing, layering, quote stuffing). EU MAR Annex II 3; exchange order-to-trade ratio limits.
    Known false positives
        Fast markets in which every liquidity provider cancels and re-posts at the new price while few
        orders trade; intervals right after a halt.
    """

    rule_id = "MS035"
    name = "cancel_to_fill_market"
    typology = Typology.CANCEL_TO_FILL
    regulatory_name = "EU MAR Annex II 3: excessive cancellations (market level)"
    metric = "cancels_per_fill"
    numerator = ("cancel",)
    denominator = "fill"
    instead = "MS010 cancel_to_fill"
    label = "cancels per fill"
