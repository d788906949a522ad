"""MS033 level_message_burst — quote stuffing at one price level: orders flickering at a single price."""

from __future__ import annotations

from market_surveillance.rules.message_burst import LevelMessageBurstParams, _Burst
from market_surveillance.rules.registry import register


@register
class LevelMessageBurst(_Burst):
    """Account-free quote stuffing at one price level.

    What it detects
        On one venue, asset, side and price: an interval of ``bucket_s`` seconds holding at least
        ``burst_multiple`` times the instrument's busy level per price level (the ``reference_quantile`` of
        its active (level, interval) message counts) and at least ``min_messages``, of which at most
        ``max_trade_share`` are executions. Hit intervals on one side within ``episode_gap_s`` make one
        alert, whichever levels flicker (the explanation gives their price range). Needs order events, not accounts; it skips data with
        account ids (MS009 names the account there). On level-based books (``book`` table) each level
        change counts as a message.
    Why it is abusive
        Orders placed and cancelled again and again at one price ("flickering" quotes) flood the feed for
        that level without trading, misleading others about the depth there or slowing their view of it.
        EU MAR Annex II 3(a)/(b); RTS 6 order-to-trade controls.
    Known false positives
        A market maker's quote pegged to the touch that re-posts on every change of the best price,
        odd-lot algorithms re-posting at the touch; both show as one level flickering without trades.
    """

    rule_id = "MS033"
    name = "level_message_burst"
    regulatory_name = "EU MAR Annex II 3: disruption of the trading system (quote stuffing, price level)"
    keys = ("venue", "asset", "side", "price")
    Params = LevelMessageBurstParams
