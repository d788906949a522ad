"""One canonical market name across adapters: ``BASE-QUOTE`` (``NULS/BTC``, ``NULS_BTC``, ``NULSBTC`` → ``NULS-BTC``)."""

from __future__ import annotations

import re

#: Quote assets crypto venues list spot pairs against (longest suffix wins: ``BTCUSDT`` → ``BTC-USDT``).
QUOTE_ASSETS = (
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "PAX", "USDS", "DAI", "UST", "VAI", "AEUR", "EURI",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
    "EUR", "GBP", "AUD", "TRY", "BRL", "RUB", "UAH", "NGN", "ZAR", "PLN", "RON", "ARS", "JPY", "MXN",
    "COP", "CZK", "IDRT", "BIDR", "BKRW", "BVND", "IDR", "USD",
)  # fmt: skip


def split_symbol(symbol: str) -> str | None:
    """``BASE-QUOTE`` of a glued symbol (``NULSBTC`` → ``NULS-BTC``), or None when no known quote ends it."""
    s = symbol.strip().upper()
    for quote in sorted(QUOTE_ASSETS, key=len, reverse=True):
        if s.endswith(quote) and len(s) > len(quote):
            return f"{s[: -len(quote)]}-{quote}"
    return None


def market_name(symbol: str) -> str:
    """Canonical market name: separators become ``-``; a glued symbol is split at its quote asset.

    Symbols that are neither (futures such as ``XBTUSD`` perpetual names are split too; an unknown quote
    keeps the symbol upper-cased) are returned as they are.
    """
    s = symbol.strip().upper()
    if re.search(r"[/_:-]", s):
        return re.sub(r"[/_:]", "-", s)
    return split_symbol(s) or s
